//! Presence, pure: which session sits in which room for which user, and the counts.

use crate::{SessionId, User, UserId};
use std::collections::HashMap;
use std::sync::Arc;

/// A user present in a room, with the sessions that put them there.
#[derive(Debug)]
struct Present {
    name: Arc<str>,
    sessions: Vec<SessionId>,
}

/// Where a session sits.
#[derive(Debug)]
struct Seat {
    room: Arc<str>,
    user: UserId,
}

/// Result of seating a session in a room.
#[derive(Debug, PartialEq, Eq)]
pub struct Entered {
    /// Distinct users in the room now.
    pub count: usize,
    /// True if this is the user's first session in the room (announce `JOIN`).
    pub first: bool,
    /// The room the session left to come here, if any.
    pub left: Option<Left>,
    /// The room's name as the table holds it: one copy, shared by every seat there.
    pub room: Arc<str>,
}

/// Result of a session leaving its room.
#[derive(Debug, PartialEq, Eq)]
pub struct Left {
    /// The room left.
    pub room: Arc<str>,
    /// The user's name.
    pub name: Arc<str>,
    /// Distinct users still in the room.
    pub count: usize,
    /// True if that was the user's last session there (announce `LEAVE`).
    pub last: bool,
}

/// Presence state, pure and synchronous: which session is in which room for which user.
/// Counts are distinct users; a room with nobody left is removed.
#[derive(Debug, Default)]
pub struct RoomTable {
    rooms: HashMap<Arc<str>, HashMap<UserId, Present>>,
    seats: HashMap<SessionId, Seat>,
}

impl RoomTable {
    /// Seats `session` (of `user`) in `room`, leaving its current room first. Joining the room
    /// the session is already in changes nothing.
    pub fn join(&mut self, session: SessionId, user: &User, room: &Arc<str>) -> Entered {
        if let Some(seat) = self.seats.get(&session)
            && &seat.room == room
        {
            return Entered {
                count: self.count(room),
                first: false,
                left: None,
                room: seat.room.clone(),
            };
        }
        let left = self.leave(session);
        let room = self.name(room).unwrap_or(room).clone();
        let users = self.rooms.entry(room.clone()).or_default();
        let present = users.entry(user.id).or_insert_with(|| Present {
            name: user.name.clone(),
            sessions: Vec::new(),
        });
        let first = present.sessions.is_empty();
        present.sessions.push(session);
        let count = users.len();
        self.seats.insert(
            session,
            Seat {
                room: room.clone(),
                user: user.id,
            },
        );
        Entered {
            count,
            first,
            left,
            room,
        }
    }

    /// Takes `session` out of its room, if it is in one.
    pub fn leave(&mut self, session: SessionId) -> Option<Left> {
        let seat = self.seats.remove(&session)?;
        let users = self.rooms.get_mut(&seat.room)?;
        let present = users.get_mut(&seat.user)?;
        present.sessions.retain(|s| *s != session);
        let name = present.name.clone();
        let last = present.sessions.is_empty();
        if last {
            users.remove(&seat.user);
        }
        let count = users.len();
        if count == 0 {
            self.rooms.remove(&seat.room);
        }
        Some(Left {
            room: seat.room,
            name,
            count,
            last,
        })
    }

    /// `room`'s name as the table holds it (one copy, shared by every seat there), if anyone
    /// is in it.
    pub fn name(&self, room: &str) -> Option<&Arc<str>> {
        self.rooms.get_key_value(room).map(|(name, _)| name)
    }

    /// The room `session` is in.
    pub fn room_of(&self, session: SessionId) -> Option<&Arc<str>> {
        self.seats.get(&session).map(|s| &s.room)
    }

    /// Distinct users in `room`.
    pub fn count(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |u| u.len())
    }

    /// Every session in `room`.
    pub fn sessions_in<'a>(&'a self, room: &str) -> impl Iterator<Item = SessionId> + 'a {
        self.rooms
            .get(room)
            .into_iter()
            .flat_map(|users| users.values())
            .flat_map(|p| p.sessions.iter().copied())
    }

    /// Names of the users in `room`, sorted.
    pub fn names_in(&self, room: &str) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = self
            .rooms
            .get(room)
            .map(|u| u.values().map(|p| p.name.clone()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Every seated session.
    pub fn seated(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.seats.keys().copied()
    }

    /// Rooms with users in them.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The rooms `user` has a session in (any node's), sorted; a pass over every seat.
    pub fn rooms_of(&self, user: UserId) -> Vec<Arc<str>> {
        let mut v: Vec<Arc<str>> = self
            .seats
            .values()
            .filter(|s| s.user == user)
            .map(|s| s.room.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Rooms with users online and their counts, sorted by name.
    pub fn rooms(&self) -> Vec<(Arc<str>, usize)> {
        let mut v: Vec<(Arc<str>, usize)> = self
            .rooms
            .iter()
            .map(|(r, u)| (r.clone(), u.len()))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: UserId, name: &str) -> User {
        User {
            id,
            name: name.into(),
        }
    }

    #[test]
    fn a_room_keeps_one_copy_of_its_name_for_every_seat() {
        let mut t = RoomTable::default();
        let first: Arc<str> = "general".into();
        let later: Arc<str> = "general".into();
        t.join(10, &user(1, "alice"), &first);
        let e = t.join(20, &user(2, "bob"), &later);
        assert!(
            Arc::ptr_eq(&e.room, &first),
            "the join hands out the table's copy"
        );
        drop(e);
        let name = t.name("general").unwrap();
        assert!(Arc::ptr_eq(name, &first));
        assert!(
            Arc::ptr_eq(t.room_of(20).unwrap(), &first),
            "bob's seat shares it"
        );
        drop(later);
        assert_eq!(Arc::strong_count(&first), 4, "the key, two seats and ours");
        assert_eq!(t.name("elsewhere"), None);
    }

    #[test]
    fn counts_distinct_users_across_sessions() {
        let mut t = RoomTable::default();
        let g: Arc<str> = "general".into();
        let alice = user(1, "alice");
        let bob = user(2, "bob");
        let e = t.join(10, &alice, &g);
        assert_eq!((e.count, e.first), (1, true));
        let e = t.join(11, &alice, &g); // alice's second session
        assert_eq!((e.count, e.first), (1, false));
        let e = t.join(20, &bob, &g);
        assert_eq!((e.count, e.first), (2, true));
        let l = t.leave(10).unwrap();
        assert_eq!((l.count, l.last), (2, false)); // alice still here on session 11
        let l = t.leave(11).unwrap();
        assert_eq!((l.count, l.last, &*l.name), (1, true, "alice"));
        assert_eq!(t.names_in("general"), vec![Arc::<str>::from("bob")]);
        assert!(t.leave(11).is_none()); // a second leave changes nothing
        let l = t.leave(20).unwrap();
        assert_eq!((l.count, l.last), (0, true));
        assert!(t.rooms().is_empty());
    }

    #[test]
    fn switching_rooms_leaves_the_old_one() {
        let mut t = RoomTable::default();
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        let alice = user(1, "alice");
        t.join(1, &alice, &a);
        t.join(2, &user(2, "bob"), &a);
        let e = t.join(1, &alice, &b);
        assert_eq!(e.count, 1);
        assert!(e.first);
        let left = e.left.unwrap();
        assert_eq!((&*left.room, left.count, left.last), ("a", 1, true));
        assert_eq!(t.rooms(), vec![(a.clone(), 1), (b.clone(), 1)]);
        // Rejoining the same room is a no-op.
        let e = t.join(1, &alice, &b);
        assert_eq!(
            e,
            Entered {
                count: 1,
                first: false,
                left: None,
                room: b.clone(),
            }
        );
        assert_eq!(t.sessions_in("b").collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn names_are_sorted() {
        let mut t = RoomTable::default();
        let g: Arc<str> = "g".into();
        for (i, n) in ["carol", "alice", "bob"].iter().enumerate() {
            t.join(i as u64, &user(i as i64, n), &g);
        }
        let names: Vec<String> = t.names_in("g").iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
        assert_eq!(t.count("g"), 3);
        assert_eq!(t.count("nowhere"), 0);
    }
}
