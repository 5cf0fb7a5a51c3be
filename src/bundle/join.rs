//! TEMPORARY stub until the join writer lands.
#![allow(missing_docs)]
use std::path::{Path, PathBuf};

use super::manifest::MemberInfo;

pub struct Join {
    pub member: MemberInfo,
    pub cluster_id: String,
    pub initial_cluster: String,
    pub data_dir: String,
    pub pki_dir: String,
    pub flags: Vec<String>,
    pub env: String,
    pub pod: String,
    pub pki_files: Vec<(String, Vec<u8>)>,
    pub owner: (u32, u32),
    pub cluster_version: String,
}

pub struct Written {
    pub path: PathBuf,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("stub")]
    Stub,
}

pub fn write_join(out: &Path, j: &Join, _force: bool) -> Result<Written, JoinError> {
    Ok(Written {
        path: out.join(format!("{}.tar.zst", j.member.name)),
        sha256: String::new(),
    })
}
