//! An account's profile as the read model holds it: the four fields in ONE shared allocation
//! (three u16 lengths, then the bytes). A district of a million accounts held each profile as an
//! `Arc<Profile>` of four `String`s: five allocations, ~170 bytes; packed it is one, ~70 bytes.
//! Copying a row (copy-on-write of the state) still copies no personal data.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Profile;

const HEADER: usize = 6;

#[derive(Clone, PartialEq, Eq)]
pub struct PackedProfile(Arc<[u8]>);

impl PackedProfile {
    pub fn new(p: &Profile) -> PackedProfile {
        PackedProfile::from_fields([&p.login, &p.first_name, &p.last_name, &p.email])
    }

    /// From login, first name, last name and email, in that order.
    pub fn from_fields(fields: [&str; 4]) -> PackedProfile {
        let mut bytes = Vec::with_capacity(HEADER + fields.iter().map(|f| f.len()).sum::<usize>());
        for f in &fields[..3] {
            // Fields are at most 256 bytes (decide); a longer one (never written) is cut.
            bytes.extend_from_slice(&(f.len().min(u16::MAX as usize) as u16).to_le_bytes());
        }
        for f in fields {
            bytes.extend_from_slice(f.as_bytes());
        }
        PackedProfile(bytes.into())
    }

    /// The profile of an account whose key was destroyed (also the blank left where a
    /// profile is taken out): one shared allocation, so blanking allocates nothing.
    pub fn erased() -> PackedProfile {
        static ERASED: std::sync::OnceLock<PackedProfile> = std::sync::OnceLock::new();
        ERASED
            .get_or_init(|| PackedProfile::new(&Profile::erased()))
            .clone()
    }

    fn field(&self, i: usize) -> &str {
        let b = &self.0;
        let len = |k: usize| u16::from_le_bytes([b[2 * k], b[2 * k + 1]]) as usize;
        let start = HEADER + (0..i).map(len).sum::<usize>();
        let end = if i < 3 { start + len(i) } else { b.len() };
        // Built from `&str`s only: always UTF-8 at these bounds; a defect reads as blank.
        b.get(start..end)
            .and_then(|s| std::str::from_utf8(s).ok())
            .unwrap_or("")
    }

    pub fn login(&self) -> &str {
        self.field(0)
    }

    pub fn first_name(&self) -> &str {
        self.field(1)
    }

    pub fn last_name(&self) -> &str {
        self.field(2)
    }

    pub fn email(&self) -> &str {
        self.field(3)
    }

    pub fn is_erased(&self) -> bool {
        self.login().is_empty()
    }

    pub fn to_profile(&self) -> Profile {
        Profile {
            login: self.login().to_string(),
            first_name: self.first_name().to_string(),
            last_name: self.last_name().to_string(),
            email: self.email().to_string(),
        }
    }

    /// The same allocation (a cheap "unchanged" test before comparing bytes).
    pub fn ptr_eq(a: &PackedProfile, b: &PackedProfile) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Default for PackedProfile {
    fn default() -> PackedProfile {
        PackedProfile::erased()
    }
}

impl From<&Profile> for PackedProfile {
    fn from(p: &Profile) -> PackedProfile {
        PackedProfile::new(p)
    }
}

impl PartialEq<Profile> for PackedProfile {
    fn eq(&self, p: &Profile) -> bool {
        self.login() == p.login
            && self.first_name() == p.first_name
            && self.last_name() == p.last_name
            && self.email() == p.email
    }
}

impl std::fmt::Debug for PackedProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_profile().fmt(f)
    }
}

/// Stored (inside a view row) exactly as a [`Profile`]: the packing is in memory only.
impl Serialize for PackedProfile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Profile", 4)?;
        st.serialize_field("login", self.login())?;
        st.serialize_field("first_name", self.first_name())?;
        st.serialize_field("last_name", self.last_name())?;
        st.serialize_field("email", self.email())?;
        st.end()
    }
}

/// A [`Profile`] as serialized, its fields borrowed from the bytes where the decoder can
/// (opening a 1M-account district's rows: four `String`s fewer per row).
#[derive(Deserialize)]
struct ProfileFields<'a> {
    #[serde(borrow)]
    login: Cow<'a, str>,
    #[serde(borrow)]
    first_name: Cow<'a, str>,
    #[serde(borrow)]
    last_name: Cow<'a, str>,
    #[serde(borrow)]
    email: Cow<'a, str>,
}

impl<'de> Deserialize<'de> for PackedProfile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PackedProfile, D::Error> {
        let p = ProfileFields::deserialize(d)?;
        let fields = [&*p.login, &*p.first_name, &*p.last_name, &*p.email];
        // The blank an event is stored with (its profile is sealed apart): the shared one,
        // not an allocation per event read.
        if fields.iter().all(|f| f.is_empty()) {
            return Ok(PackedProfile::erased());
        }
        Ok(PackedProfile::from_fields(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_including_empty_and_multibyte_ones() {
        for p in [
            Profile::erased(),
            Profile {
                login: "ann".into(),
                first_name: "Ånne\nMarie".into(),
                last_name: String::new(),
                email: "ann@x.example".into(),
            },
            Profile {
                login: "l".repeat(256),
                first_name: "f".repeat(256),
                last_name: "🙂".repeat(64),
                email: "e".repeat(256),
            },
        ] {
            let packed = PackedProfile::new(&p);
            assert_eq!(packed.to_profile(), p);
            // Stored exactly as a Profile is.
            let config = bincode::config::standard();
            assert_eq!(
                bincode::serde::encode_to_vec(&packed, config).unwrap(),
                bincode::serde::encode_to_vec(&p, config).unwrap()
            );
            assert!(packed == p);
            assert_eq!(packed.is_erased(), p.is_erased());
        }
    }
}
