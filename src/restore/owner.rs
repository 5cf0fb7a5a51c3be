//! `--owner UID:GID`: who owns what `restore`, `bundle` and `install` write,
//! parsed once for every command that takes it (clap parses it through
//! [`FromStr`]).

use std::str::FromStr;

/// A numeric owner, `UID:GID` (e.g. `2001:2001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The user ID.
    pub uid: u32,
    /// The group ID.
    pub gid: u32,
}

/// Why a `UID:GID` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    /// No colon between the two IDs.
    #[error("expected UID:GID")]
    NoColon,
    /// The user ID is not a number that fits 32 bits.
    #[error("bad uid {0:?}")]
    Uid(String),
    /// The group ID is not a number that fits 32 bits.
    #[error("bad gid {0:?}")]
    Gid(String),
}

impl Owner {
    /// The owner as the `(uid, gid)` pair the writers take.
    pub fn ids(self) -> (u32, u32) {
        (self.uid, self.gid)
    }
}

impl FromStr for Owner {
    type Err = OwnerError;

    fn from_str(s: &str) -> Result<Owner, OwnerError> {
        let (u, g) = s.split_once(':').ok_or(OwnerError::NoColon)?;
        Ok(Owner {
            uid: u.parse().map_err(|_| OwnerError::Uid(u.to_string()))?,
            gid: g.parse().map_err(|_| OwnerError::Gid(g.to_string()))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            "2001:2002".parse::<Owner>().map(Owner::ids),
            Ok((2001, 2002))
        );
        assert_eq!("2001".parse::<Owner>(), Err(OwnerError::NoColon));
        assert_eq!(
            "x:1".parse::<Owner>().map_err(|e| e.to_string()),
            Err("bad uid \"x\"".to_string())
        );
        assert_eq!(
            "1:-1".parse::<Owner>().map_err(|e| e.to_string()),
            Err("bad gid \"-1\"".to_string())
        );
    }
}
