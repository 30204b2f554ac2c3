//! Short strings that many rows repeat (an account's domain and role): one shared allocation
//! per distinct value, so a district of a million accounts holds a million pointers to
//! "student", not a million copies (each row was 48 bytes larger with two `String`s).
//!
//! Values are interned process-wide when made or read back and stay for the life of the
//! process (at most [`MAX_INTERNED`] of them, a few MB at worst); past that a value gets an
//! allocation of its own, so a file of a million distinct roles costs what plain strings would.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock, RwLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Distinct values kept shared; later ones get an allocation of their own.
const MAX_INTERNED: usize = 65_536;

/// Values each thread remembers without the table's lock.
const RECENT_PER_THREAD: usize = 8;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedName(Arc<str>);

fn table() -> &'static RwLock<HashSet<Arc<str>>> {
    static TABLE: OnceLock<RwLock<HashSet<Arc<str>>>> = OnceLock::new();
    TABLE.get_or_init(RwLock::default)
}

impl SharedName {
    pub fn new(s: &str) -> SharedName {
        thread_local! {
            // The values this thread made last: rows read or decided in a run share their
            // domain and mostly their role, and this skips the shared table's lock for them.
            static RECENT: RefCell<Vec<Arc<str>>> = const { RefCell::new(Vec::new()) };
        }
        let hit = RECENT
            .try_with(|recent| recent.borrow().iter().find(|r| ***r == *s).cloned())
            .ok()
            .flatten();
        if let Some(hit) = hit {
            return SharedName(hit);
        }
        let made = SharedName::from_table(s);
        // Absent while the thread's locals are being destroyed: then simply not remembered.
        let _ = RECENT.try_with(|recent| {
            let mut recent = recent.borrow_mut();
            if recent.len() == RECENT_PER_THREAD {
                recent.remove(0);
            }
            recent.push(made.0.clone());
        });
        made
    }

    fn from_table(s: &str) -> SharedName {
        {
            let table = table().read().unwrap_or_else(|e| e.into_inner());
            if let Some(shared) = table.get(s) {
                return SharedName(shared.clone());
            }
            if table.len() >= MAX_INTERNED {
                // Full: an allocation of its own, without the write lock.
                return SharedName(Arc::from(s));
            }
        }
        let mut table = table().write().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = table.get(s) {
            return SharedName(shared.clone());
        }
        let value: Arc<str> = Arc::from(s);
        if table.len() < MAX_INTERNED {
            table.insert(value.clone());
        }
        SharedName(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SharedName {
    fn default() -> SharedName {
        SharedName::new("")
    }
}

impl Deref for SharedName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SharedName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedName {
    fn from(s: &str) -> SharedName {
        SharedName::new(s)
    }
}

impl From<&String> for SharedName {
    fn from(s: &String) -> SharedName {
        SharedName::new(s)
    }
}

impl From<String> for SharedName {
    fn from(s: String) -> SharedName {
        SharedName::new(&s)
    }
}

impl From<SharedName> for String {
    fn from(s: SharedName) -> String {
        s.0.to_string()
    }
}

impl PartialEq<str> for SharedName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedName> for String {
    fn eq(&self, other: &SharedName) -> bool {
        **self == *other.0
    }
}

impl PartialEq<SharedName> for str {
    fn eq(&self, other: &SharedName) -> bool {
        *self == *other.0
    }
}

impl fmt::Debug for SharedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// Written as a plain string: the stored form is the one `String` had.
impl Serialize for SharedName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedName, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SharedName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SharedName, E> {
                Ok(SharedName::new(v))
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_allocation_and_read_back_as_written() {
        let a = SharedName::new("teacher");
        let b = SharedName::from(String::from("teacher"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "teacher");
        let bytes = bincode::serde::encode_to_vec(&a, bincode::config::standard()).unwrap();
        let plain = bincode::serde::encode_to_vec("teacher", bincode::config::standard()).unwrap();
        assert_eq!(bytes, plain, "stored as a plain string");
        let (back, _): (SharedName, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert!(Arc::ptr_eq(&a.0, &back.0));
    }

    #[test]
    fn a_value_made_on_one_thread_is_shared_with_another() {
        let name = "shared-name-cross-thread-test";
        let here = SharedName::new(name);
        let there = std::thread::spawn(move || SharedName::new(name))
            .join()
            .unwrap();
        assert!(
            Arc::ptr_eq(&here.0, &there.0),
            "found in the process-wide table"
        );
    }
}
