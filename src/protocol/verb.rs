//! The one table of verbs: every verb's name, usage form, help line and session rules.

/// Every verb a client can send, chat lines included. [`Verb::spec`] is the one table of their
/// names, usage forms, help lines and session rules; parsing, `#help`, logging and the session's
/// checks all read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `#register`
    Register,
    /// `#login`
    Login,
    /// `#password`
    Password,
    /// `#join`
    Join,
    /// `#leave`
    Leave,
    /// a chat line
    Say,
    /// `#me`
    Me,
    /// `#topic`
    Topic,
    /// `#whois`
    Whois,
    /// `#users`
    Users,
    /// `#rooms`
    Rooms,
    /// `#all_messages`
    AllMessages,
    /// `#my_messages`
    MyMessages,
    /// `#msg`
    Msg,
    /// `#privates`
    Privates,
    /// `#search`
    Search,
    /// `#ignore`
    Ignore,
    /// `#unignore`
    Unignore,
    /// `#ping`
    Ping,
    /// `#health`
    Health,
    /// `#stats`
    Stats,
    /// `#help`
    Help,
    /// `#quit`
    Quit,
    /// `#kick` (admins)
    Kick,
    /// `#modlog` (admins)
    Modlog,
    /// `#ban` (admins)
    Ban,
    /// `#unban` (admins)
    Unban,
    /// `#mute` (admins)
    Mute,
    /// `#unmute` (admins)
    Unmute,
    /// `#delete` (admins)
    Delete,
}

/// What the table says of one verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerbSpec {
    /// The word after `#` (`say` for chat lines, which have none).
    pub name: &'static str,
    /// The usage form, as `ERR usage` and `#help` show it.
    pub form: &'static str,
    /// The `#help` line's explanation.
    pub help: &'static str,
    /// Allowed before logging in.
    pub guest: bool,
    /// Takes a token from the user's message rate limit (the requests that make the server
    /// write or read the database).
    pub rate_limited: bool,
}

impl Verb {
    /// Every verb, in `#help`'s order.
    pub const ALL: [Verb; 30] = [
        Verb::Register,
        Verb::Login,
        Verb::Password,
        Verb::Join,
        Verb::Leave,
        Verb::Say,
        Verb::Me,
        Verb::Topic,
        Verb::Users,
        Verb::Rooms,
        Verb::Whois,
        Verb::AllMessages,
        Verb::MyMessages,
        Verb::Msg,
        Verb::Privates,
        Verb::Search,
        Verb::Ignore,
        Verb::Unignore,
        Verb::Ping,
        Verb::Health,
        Verb::Stats,
        Verb::Help,
        Verb::Quit,
        Verb::Kick,
        Verb::Ban,
        Verb::Unban,
        Verb::Mute,
        Verb::Unmute,
        Verb::Delete,
        Verb::Modlog,
    ];

    /// The table.
    pub const fn spec(self) -> VerbSpec {
        const fn v(
            name: &'static str,
            form: &'static str,
            help: &'static str,
            guest: bool,
            rate_limited: bool,
        ) -> VerbSpec {
            VerbSpec {
                name,
                form,
                help,
                guest,
                rate_limited,
            }
        }
        match self {
            Verb::Register => v(
                "register",
                "#register NAME PASSWORD",
                "make an account and log in (password 8 to 72 bytes)",
                true,
                false,
            ),
            Verb::Login => v("login", "#login NAME PASSWORD", "log in", true, false),
            Verb::Password => v(
                "password",
                "#password OLD NEW",
                "change your password (your other sessions stay logged in)",
                false,
                false,
            ),
            Verb::Join => v(
                "join",
                "#join ROOM",
                "enter ROOM (leaving the current one) and see its recent messages",
                false,
                true,
            ),
            Verb::Leave => v("leave", "#leave", "leave the current room", false, false),
            Verb::Say => v(
                "say",
                "TEXT",
                "say TEXT in the current room (start with ## to say a line starting with #)",
                false,
                true,
            ),
            Verb::Me => v(
                "me",
                "#me TEXT",
                "an action in the current room, shown as * NAME TEXT",
                false,
                true,
            ),
            Verb::Topic => v(
                "topic",
                "#topic [TEXT]",
                "the current room's topic; with TEXT, set it (anyone in the room)",
                false,
                true,
            ),
            Verb::Whois => v(
                "whois",
                "#whois NAME",
                "when NAME registered, and online in which rooms or last seen when",
                false,
                true,
            ),
            Verb::Users => v(
                "users",
                "#users",
                "who is in the current room",
                false,
                false,
            ),
            Verb::Rooms => v("rooms", "#rooms", "rooms with users online", false, false),
            Verb::AllMessages => v(
                "all_messages",
                "#all_messages [LIMIT] [BEFORE_ID]",
                "messages you sent, in every room, and private messages you received",
                false,
                true,
            ),
            Verb::MyMessages => v(
                "my_messages",
                "#my_messages [LIMIT] [BEFORE_ID]",
                "messages of every room you have joined",
                false,
                true,
            ),
            Verb::Msg => v(
                "msg",
                "#msg NAME TEXT",
                "send TEXT to NAME alone (any case), online or not",
                false,
                true,
            ),
            Verb::Privates => v(
                "privates",
                "#privates [NAME [LIMIT] [BEFORE_ID]]",
                "your private messages with NAME, oldest first; alone: your conversations",
                false,
                true,
            ),
            Verb::Search => v(
                "search",
                "#search WORDS [in=ROOM|in=@NAME] [from=NAME] [LIMIT] [BEFORE_ID]",
                "messages you may read with all of WORDS (\"a phrase\", pre*, -not), newest LIMIT, oldest first",
                false,
                true,
            ),
            Verb::Ignore => v(
                "ignore",
                "#ignore NAME",
                "refuse NAME's private messages (NAME is not told)",
                false,
                true,
            ),
            Verb::Unignore => v(
                "unignore",
                "#unignore NAME",
                "take NAME's private messages again",
                false,
                true,
            ),
            Verb::Ping => v("ping", "#ping", "PONG", true, false),
            Verb::Health => v(
                "health",
                "#health",
                "OK health if the server and its database answer",
                true,
                false,
            ),
            Verb::Stats => v(
                "stats",
                "#stats",
                "server statistics (logged in)",
                false,
                false,
            ),
            Verb::Help => v("help", "#help", "this list", true, false),
            Verb::Quit => v("quit", "#quit", "close the connection", true, false),
            Verb::Kick => v(
                "kick",
                "#kick NAME [REASON]",
                "(admins) close every session of NAME, telling it REASON",
                false,
                true,
            ),
            Verb::Ban => v(
                "ban",
                "#ban NAME|ADDRESS[/BITS] [DURATION] [REASON]",
                "(admins) refuse NAME's logins, or an address's or network's connections, for DURATION (30m, 12h, 7d; none: for good), closing them now",
                false,
                true,
            ),
            Verb::Unban => v(
                "unban",
                "#unban NAME|ADDRESS[/BITS]",
                "(admins) lift a ban",
                false,
                true,
            ),
            Verb::Mute => v(
                "mute",
                "#mute NAME [DURATION] [REASON]",
                "(admins) refuse NAME's chat lines for DURATION (none: for good)",
                false,
                true,
            ),
            Verb::Unmute => v(
                "unmute",
                "#unmute NAME",
                "(admins) lift a mute",
                false,
                true,
            ),
            Verb::Delete => v(
                "delete",
                "#delete ID [REASON]",
                "(admins) remove message ID from history; its room is told",
                false,
                true,
            ),
            Verb::Modlog => v(
                "modlog",
                "#modlog [LIMIT]",
                "(admins) the recent moderation actions, oldest first",
                false,
                true,
            ),
        }
    }

    /// Whether only admins may use it (the moderation verbs).
    pub const fn is_admin_only(self) -> bool {
        matches!(
            self,
            Verb::Kick
                | Verb::Ban
                | Verb::Unban
                | Verb::Mute
                | Verb::Unmute
                | Verb::Delete
                | Verb::Modlog
        )
    }

    /// The command verb a line names (`#word ...`), if it names one; `None` for chat lines.
    pub fn of_line(line: &str) -> Option<Verb> {
        let command = line.strip_prefix('#')?;
        Verb::named(command.split(' ').find(|w| !w.is_empty())?)
    }

    /// The command verb named `word` (any case); chat lines have no name.
    pub fn named(word: &str) -> Option<Verb> {
        Verb::ALL
            .into_iter()
            .find(|v| *v != Verb::Say && v.spec().name.eq_ignore_ascii_case(word))
    }
}
