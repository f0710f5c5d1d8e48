//! `#search`'s arguments: the words a client typed, turned into a full-text query that can only
//! mean what the words say.
//!
//! A client never writes the index's query language. Each word is quoted before it reaches
//! SQLite (FTS5 strings: `"` doubled), so operators, parentheses, column names and stray quotes
//! in a search are plain text, and the only syntax is this module's:
//! - `word`: messages containing the word (case and diacritics do not matter);
//! - `"two words"`: the words next to each other, in that order;
//! - `word*`: a word starting with `word`;
//! - `-word`, `-"two words"`: messages without it (at least one word must be wanted);
//! - `in=ROOM`, `in=@NAME` (the private conversation with NAME), `from=NAME`: filters;
//! - the last one or two bare numbers: LIMIT and BEFORE_ID, as in the other history verbs (a
//!   number to search for is quoted: `"404"`).

use super::args::{Page, validate_name};
use super::{ErrCode, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, ProtoError};

/// Longest search, in bytes (what follows `#search`).
pub const SEARCH_MAX_BYTES: usize = 256;
/// Most words and phrases in one search.
pub const SEARCH_MAX_TERMS: usize = 10;
/// The usage form.
const FORM: &str = "#search WORDS [in=ROOM|in=@NAME] [from=NAME] [LIMIT] [BEFORE_ID]";

/// Where a search looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Within {
    /// One room the user has joined (lower case).
    Room(String),
    /// The user's private conversation with this account.
    Private(String),
}

/// A parsed `#search`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The words as an FTS5 expression over the `body` column, every term quoted.
    pub expr: String,
    /// `in=`: one room or conversation; `None`: everything the user may read.
    pub within: Option<Within>,
    /// `from=`: one sender.
    pub from: Option<String>,
    /// Which page.
    pub page: Page,
}

/// One word or phrase as the client wrote it.
struct Term {
    text: String,
    negated: bool,
    prefix: bool,
}

impl Term {
    /// The term as an FTS5 string (`"..."`, quotes doubled), `*` after it for a prefix.
    fn quoted(&self) -> String {
        let mut s = format!("\"{}\"", self.text.replace('"', "\"\""));
        if self.prefix {
            s.push('*');
        }
        s
    }
}

fn usage(why: &str) -> ProtoError {
    ProtoError::new(ErrCode::Usage, format!("{why}; usage: {FORM}"))
}

/// Parses what follows `#search` (the raw rest of the line).
pub fn parse(rest: &str) -> Result<Search, ProtoError> {
    let rest = rest.trim_matches(' ');
    if rest.len() > SEARCH_MAX_BYTES {
        return Err(usage(&format!(
            "a search is at most {SEARCH_MAX_BYTES} bytes"
        )));
    }
    let mut terms: Vec<Term> = Vec::new();
    let mut numbers: Vec<&str> = Vec::new();
    let mut within = None;
    let mut from = None;
    let mut s = rest;
    loop {
        s = s.trim_start_matches(' ');
        if s.is_empty() {
            break;
        }
        let negated = s.starts_with('-');
        let body = if negated { &s[1..] } else { s };
        if let Some(quoted) = body.strip_prefix('"') {
            let Some(end) = quoted.find('"') else {
                return Err(usage("a quote is not closed"));
            };
            numbers.clear();
            terms.extend(term(&quoted[..end], negated, false));
            s = &quoted[end + 1..];
            continue;
        }
        let end = s.find(' ').unwrap_or(s.len());
        let word = &s[..end];
        s = &s[end..];
        if let Some(room) = word.strip_prefix("in=") {
            if within.is_some() {
                return Err(usage("in= is given twice"));
            }
            within = Some(match room.strip_prefix('@') {
                Some(name) => {
                    validate_name(name)?;
                    Within::Private(name.to_string())
                }
                None => {
                    validate_name(room)?;
                    Within::Room(room.to_ascii_lowercase())
                }
            });
        } else if let Some(name) = word.strip_prefix("from=") {
            if from.is_some() {
                return Err(usage("from= is given twice"));
            }
            validate_name(name)?;
            from = Some(name.to_string());
        } else if !negated && word.bytes().all(|b| b.is_ascii_digit()) {
            numbers.push(word);
        } else {
            // Numbers followed by a word were words.
            for n in numbers.drain(..) {
                terms.extend(term(n, false, false));
            }
            let body = if negated { &word[1..] } else { word };
            let (body, prefix) = match body.strip_suffix('*') {
                Some(b) => (b, true),
                None => (body, false),
            };
            terms.extend(term(body, negated, prefix));
        }
    }
    // The trailing numbers: LIMIT [BEFORE_ID]; any before those two were words.
    let keep = numbers.len().saturating_sub(2);
    for n in numbers.drain(..keep) {
        terms.extend(term(n, false, false));
    }
    let page = page(&numbers)?;
    if terms.len() > SEARCH_MAX_TERMS {
        return Err(usage(&format!(
            "at most {SEARCH_MAX_TERMS} words or phrases"
        )));
    }
    let wanted: Vec<String> = terms
        .iter()
        .filter(|t| !t.negated)
        .map(Term::quoted)
        .collect();
    if wanted.is_empty() {
        return Err(usage(
            "nothing to search for: give a word with a letter or digit (a number alone is a LIMIT; quote it to search for it)",
        ));
    }
    let mut expr = format!("(body : ({}))", wanted.join(" AND "));
    for t in terms.iter().filter(|t| t.negated) {
        expr.push_str(&format!(" NOT (body : ({}))", t.quoted()));
    }
    Ok(Search {
        expr,
        within,
        from,
        page,
    })
}

/// A word or phrase; `None` if it has nothing the index holds (no letter or digit: `((`,
/// `-`, `*`), which is left out as the index would leave it out of a message.
fn term(text: &str, negated: bool, prefix: bool) -> Option<Term> {
    text.chars().any(char::is_alphanumeric).then(|| Term {
        text: text.to_string(),
        negated,
        prefix,
    })
}

/// LIMIT and BEFORE_ID from the trailing numbers.
fn page(numbers: &[&str]) -> Result<Page, ProtoError> {
    let limit = match numbers.first() {
        None => HISTORY_DEFAULT_LIMIT,
        Some(n) => match n.parse::<u32>() {
            Ok(v @ 1..=HISTORY_MAX_LIMIT) => v,
            _ => return Err(usage(&format!("LIMIT must be 1 to {HISTORY_MAX_LIMIT}"))),
        },
    };
    let before = match numbers.get(1) {
        None => None,
        Some(n) => match n.parse::<i64>() {
            Ok(v) if v >= 1 => Some(v),
            _ => return Err(usage("BEFORE_ID must be a positive message id")),
        },
    };
    Ok(Page { limit, before })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(s: &str) -> String {
        parse(s).unwrap().expr
    }

    fn refused(s: &str) -> String {
        let e = parse(s).unwrap_err();
        assert_eq!(e.code, ErrCode::Usage, "{s}");
        e.text
    }

    #[test]
    fn every_word_is_quoted() {
        assert_eq!(expr("hello"), r#"(body : ("hello"))"#);
        assert_eq!(
            expr(r#"deploy "went well" roll*"#),
            r#"(body : ("deploy" AND "went well" AND "roll"*))"#
        );
        assert_eq!(
            expr(r#"cats -dogs -"big birds""#),
            r#"(body : ("cats")) NOT (body : ("dogs")) NOT (body : ("big birds"))"#
        );
        // The index's operators and column names are plain words.
        assert_eq!(
            expr("NEAR(a OR b) scope:r1"),
            r#"(body : ("NEAR(a" AND "OR" AND "b)" AND "scope:r1"))"#
        );
        assert_eq!(expr(r#"it"s"#), r#"(body : ("it""s"))"#);
        assert_eq!(expr("café"), r#"(body : ("café"))"#);
        // Words without letters or digits are left out, as the index leaves them out.
        assert_eq!(expr("NEAR( (( - x"), r#"(body : ("NEAR(" AND "x"))"#);
    }

    #[test]
    fn filters_and_page() {
        let s = parse("deploy in=Ops from=bob 5 900").unwrap();
        assert_eq!(s.within, Some(Within::Room("ops".into())));
        assert_eq!(s.from.as_deref(), Some("bob"));
        assert_eq!(
            s.page,
            Page {
                limit: 5,
                before: Some(900)
            }
        );
        let s = parse("in=@Carol lunch").unwrap();
        assert_eq!(s.within, Some(Within::Private("Carol".into())));
        assert_eq!(
            s.page,
            Page {
                limit: HISTORY_DEFAULT_LIMIT,
                before: None
            }
        );
        // Numbers before a word, or more than two at the end, are words.
        assert_eq!(
            parse("error 404 page 3").unwrap(),
            Search {
                expr: r#"(body : ("error" AND "404" AND "page"))"#.into(),
                within: None,
                from: None,
                page: Page {
                    limit: 3,
                    before: None
                },
            }
        );
        assert_eq!(expr("1 2 3 4"), r#"(body : ("1" AND "2"))"#);
        assert_eq!(expr(r#""404""#), r#"(body : ("404"))"#);
    }

    #[test]
    fn bad_searches_are_usage_errors() {
        assert!(refused("").contains("nothing to search for"));
        assert!(refused("20").contains("nothing to search for"));
        assert!(refused("-spam").contains("nothing to search for"));
        assert!(refused(r#"say "hello"#).contains("a quote is not closed"));
        assert!(refused(r#"""#).contains("a quote is not closed"));
        assert!(refused(r#""""#).contains("nothing to search for"));
        assert!(refused("* -").contains("nothing to search for"));
        assert!(refused("(( ; --").contains("nothing to search for"));
        assert!(refused("a in=x in=y").contains("in= is given twice"));
        assert!(refused("a from=x from=y").contains("from= is given twice"));
        assert!(refused("a 0").contains("LIMIT must be 1 to 1000"));
        assert!(refused("a 5000").contains("LIMIT must be 1 to 1000"));
        assert!(refused("a 5 0").contains("BEFORE_ID"));
        assert!(refused(&"x".repeat(4096)).contains("at most 256 bytes"));
        assert!(refused("a b c d e f g h i j k").contains("at most 10 words"));
        assert_eq!(parse("a in=bad/room").unwrap_err().code, ErrCode::BadName);
        assert_eq!(parse("a from=@x").unwrap_err().code, ErrCode::BadName);
    }
}
