//! Which member a data dir already holds, read from its WAL: before a
//! command places a new member where an old one lives (a replacement
//! member's empty data dir, a restore), it names the one in the way by its
//! member and cluster IDs, so an operator can tell a stale copy of this
//! member from another member's data.
//!
//! etcd records both IDs in the metadata record at the start of every WAL
//! segment (`member/wal/<seq>-<index>.wal`). A segment is a run of frames:
//! an 8-byte little-endian word whose low 56 bits are the record's length
//! and whose top byte, when its high bit is set, carries the count of zero
//! bytes padding the record to 8 bytes (its low 3 bits); then the record,
//! a `walpb.Record` {1: type, 2: crc, 3: data}. The first record is the
//! CRC seed (type 4), the next the metadata (type 1), whose data is an
//! `etcdserverpb.Metadata` {1: NodeID, 2: ClusterID}. Its crc is CRC-32C
//! of its data, chained from the seed's crc.
//!
//! The reader is bounded: it looks at the first [`MAX_RECORDS`] records
//! within the first [`MAX_BYTES`] of the first segment only, and every
//! length is checked against what was read, so hostile bytes give an error
//! naming the file and offset, never a panic or a large allocation.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::protowire::{Fields, Value};

/// At most this many bytes of a WAL segment are read.
pub const MAX_BYTES: u64 = 1 << 20;
/// At most this many records are looked at for the metadata.
pub const MAX_RECORDS: usize = 8;

const METADATA: u64 = 1;
const CRC: u64 = 4;

/// The member a data dir holds, as its WAL records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The member ID (`etcdctl member list` prints it in hex).
    pub member_id: u64,
    /// The cluster ID.
    pub cluster_id: u64,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "member ID {:x} of cluster {:x}",
            self.member_id, self.cluster_id
        )
    }
}

/// Why the member a data dir holds could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeldError {
    /// No `*.wal` file in the WAL dir.
    #[error("{}: no WAL file", .0.display())]
    NoWal(PathBuf),
    /// A directory or file could not be read.
    #[error("{}: {err}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        err: std::io::Error,
    },
    /// The WAL's bytes are not what etcd writes: the file, the offset of
    /// the frame or record, and what is wrong there.
    #[error("{}: at byte {offset}: {why}", .path.display())]
    Bad {
        /// The WAL file.
        path: PathBuf,
        /// The offset in it.
        offset: u64,
        /// What is wrong.
        why: String,
    },
}

/// The member the data dir's `member/` holds: the IDs in the metadata
/// record of its first WAL segment (`member/wal/*.wal`, by name).
pub fn held_member(member_dir: &Path) -> Result<Held, HeldError> {
    let wal_dir = member_dir.join("wal");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err| HeldError::Io { path, err }
    };
    let mut names: Vec<PathBuf> = Vec::new();
    for e in fs::read_dir(&wal_dir).map_err(io(&wal_dir))? {
        let e = e.map_err(io(&wal_dir))?;
        let n = e.file_name();
        if n.to_string_lossy().ends_with(".wal") {
            names.push(e.path());
        }
    }
    names.sort();
    let Some(first) = names.into_iter().next() else {
        return Err(HeldError::NoWal(wal_dir));
    };
    let f = fs::File::open(&first).map_err(io(&first))?;
    let mut buf = Vec::new();
    f.take(MAX_BYTES)
        .read_to_end(&mut buf)
        .map_err(io(&first))?;
    wal_metadata(&buf).map_err(|(offset, why)| HeldError::Bad {
        path: first,
        offset,
        why,
    })
}

/// The IDs in the metadata record among the first records of WAL segment
/// bytes `b` (at most [`MAX_RECORDS`] records looked at), or the offset
/// and what is wrong there.
pub fn wal_metadata(b: &[u8]) -> Result<Held, (u64, String)> {
    let mut pos = 0usize;
    let mut crc: Option<u32> = None;
    for _ in 0..MAX_RECORDS {
        let at = pos as u64;
        let Some(word) = b.get(pos..pos + 8) else {
            return Err((
                at,
                if pos == b.len() {
                    "the WAL ends before its metadata record".into()
                } else {
                    "a frame's length runs past the end".into()
                },
            ));
        };
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let word = u64::from_le_bytes(w);
        if word == 0 {
            return Err((at, "zeros where the metadata record should be".into()));
        }
        let len = word & 0x00ff_ffff_ffff_ffff;
        let top = (word >> 56) as u8;
        let pad = if top & 0x80 != 0 {
            u64::from(top & 0x7)
        } else {
            0
        };
        let start = pos + 8;
        let end = (start as u64)
            .checked_add(len)
            .filter(|e| *e <= b.len() as u64)
            .ok_or_else(|| {
                (
                    at,
                    format!(
                        "a record of {len} bytes runs past the {} bytes read",
                        b.len()
                    ),
                )
            })? as usize;
        let rec = &b[start..end];
        let (typ, rcrc, data) = record(rec).map_err(|why| (start as u64, why))?;
        match typ {
            CRC => crc = Some(rcrc),
            METADATA => {
                let Some(seed) = crc else {
                    return Err((at, "a metadata record before the CRC record".into()));
                };
                let got = crc32c::crc32c_append(seed, data);
                if got != rcrc {
                    return Err((
                        at,
                        format!("metadata record crc {rcrc:08x}, its data gives {got:08x}"),
                    ));
                }
                return metadata(data).map_err(|why| (start as u64, why));
            }
            t => {
                return Err((
                    at,
                    format!("a record of type {t} before the metadata record"),
                ));
            }
        }
        pos = (end as u64).saturating_add(pad) as usize;
        if pos > b.len() {
            return Err((end as u64, "the record's padding runs past the end".into()));
        }
    }
    Err((
        pos as u64,
        format!("no metadata record among the first {MAX_RECORDS} records"),
    ))
}

/// A `walpb.Record`: type, crc, data.
fn record(rec: &[u8]) -> Result<(u64, u32, &[u8]), String> {
    let (mut typ, mut crc, mut data) = (None, 0u32, &[][..]);
    for f in Fields::new(rec) {
        match f.map_err(|e| format!("record: {e}"))? {
            (1, Value::Varint(v)) => typ = Some(v),
            (2, Value::Varint(v)) => {
                crc = u32::try_from(v).map_err(|_| format!("record crc {v} is above 32 bits"))?
            }
            (3, Value::Bytes(d)) => data = d,
            (n @ 1..=3, _) => return Err(format!("record field {n} has the wrong wire type")),
            _ => {}
        }
    }
    let typ = typ.ok_or("a record without a type")?;
    Ok((typ, crc, data))
}

/// An `etcdserverpb.Metadata`: NodeID, ClusterID (both non-zero).
fn metadata(data: &[u8]) -> Result<Held, String> {
    let (mut node, mut cluster) = (0u64, 0u64);
    for f in Fields::new(data) {
        match f.map_err(|e| format!("metadata: {e}"))? {
            (1, Value::Varint(v)) => node = v,
            (2, Value::Varint(v)) => cluster = v,
            (n @ 1..=2, _) => return Err(format!("metadata field {n} has the wrong wire type")),
            _ => {}
        }
    }
    if node == 0 || cluster == 0 {
        return Err(format!(
            "metadata without a member ID and a cluster ID (member {node:x}, cluster {cluster:x})"
        ));
    }
    Ok(Held {
        member_id: node,
        cluster_id: cluster,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn rec(typ: u64, crc: u32, data: Option<&[u8]>) -> Vec<u8> {
        let mut r = vec![0x08];
        varint(typ, &mut r);
        r.push(0x10);
        varint(u64::from(crc), &mut r);
        if let Some(d) = data {
            r.push(0x1a);
            varint(d.len() as u64, &mut r);
            r.extend_from_slice(d);
        }
        r
    }

    fn frame(rec: &[u8], out: &mut Vec<u8>) {
        let pad = (8 - rec.len() % 8) % 8;
        let mut word = rec.len() as u64;
        if pad > 0 {
            word |= (0x80 | pad as u64) << 56;
        }
        out.extend_from_slice(&word.to_le_bytes());
        out.extend_from_slice(rec);
        out.extend(std::iter::repeat_n(0u8, pad));
    }

    fn wal(node: u64, cluster: u64) -> Vec<u8> {
        let mut md = vec![0x08];
        varint(node, &mut md);
        md.push(0x10);
        varint(cluster, &mut md);
        let mut out = Vec::new();
        frame(&rec(CRC, 0, None), &mut out);
        frame(&rec(METADATA, crc32c::crc32c(&md), Some(&md)), &mut out);
        out
    }

    #[test]
    fn reads_the_ids_of_the_metadata_record() {
        let b = wal(0x8e9e05c52164694d, 0xcdf818194e3a8c32);
        let h = wal_metadata(&b).unwrap();
        assert_eq!(h.member_id, 0x8e9e05c52164694d);
        assert_eq!(h.cluster_id, 0xcdf818194e3a8c32);
        assert_eq!(
            h.to_string(),
            "member ID 8e9e05c52164694d of cluster cdf818194e3a8c32"
        );
    }

    /// The head of a segment real etcd 3.5.1 wrote (the fuzz seed).
    #[test]
    fn a_real_wal_head_is_read() {
        let b = include_bytes!("../../fuzz/seeds/wal_metadata/etcd-3.5.1.wal-head");
        let h = wal_metadata(b).unwrap();
        assert!(h.member_id != 0 && h.cluster_id != 0);
    }

    #[test]
    fn the_restore_writers_wal_is_read() {
        let c = crate::cluster::membership::Cluster::parse(
            "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380",
            "t",
        )
        .unwrap();
        let m = &c.members[1];
        let b = crate::restore::wal::wal_bytes(
            &c,
            m.id,
            crate::restore::target::Target::parse("3.5").unwrap(),
        );
        let h = wal_metadata(&b).unwrap();
        assert_eq!((h.member_id, h.cluster_id), (m.id, c.cluster_id));
    }

    #[test]
    fn hostile_bytes_give_an_offset_never_a_panic() {
        let good = wal(7, 9);
        // Every truncation and every single-byte change.
        for n in 0..good.len() {
            let _ = wal_metadata(&good[..n]);
            for v in [0u8, 0x7f, 0x80, 0xff] {
                let mut b = good.clone();
                b[n] = v;
                let _ = wal_metadata(&b);
            }
        }
        let e = wal_metadata(&good[..good.len() - 20]).unwrap_err();
        assert_eq!(e.0, 16, "{e:?}");
        assert!(e.1.contains("runs past"), "{e:?}");
        // A huge length.
        let mut b = good.clone();
        b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = wal_metadata(&b).unwrap_err();
        assert_eq!(e.0, 0);
        // Zeros (a preallocated segment with nothing in it).
        let e = wal_metadata(&[0u8; 64]).unwrap_err();
        assert!(e.1.contains("zeros"), "{e:?}");
        assert!(wal_metadata(&[]).unwrap_err().1.contains("ends before"));
        // A wrong crc on the metadata.
        let mut b = Vec::new();
        frame(&rec(CRC, 0, None), &mut b);
        frame(&rec(METADATA, 12345, Some(&[8, 7, 16, 9])), &mut b);
        let e = wal_metadata(&b).unwrap_err();
        assert_eq!(e.0, 16, "{e:?}");
        assert!(e.1.contains("crc 00003039"), "{e:?}");
        // Only CRC records: bounded.
        let mut b = Vec::new();
        for _ in 0..100 {
            frame(&rec(CRC, 0, None), &mut b);
        }
        let e = wal_metadata(&b).unwrap_err();
        assert!(e.1.contains("no metadata record"), "{e:?}");
    }

    #[test]
    fn a_member_dir_without_a_wal_is_named() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("member/wal")).unwrap();
        let e = held_member(&t.path().join("member")).unwrap_err();
        assert!(e.to_string().contains("no WAL file"), "{e}");
        std::fs::write(
            t.path()
                .join("member/wal/0000000000000000-0000000000000000.wal"),
            [1u8, 2, 3],
        )
        .unwrap();
        let e = held_member(&t.path().join("member")).unwrap_err();
        assert!(
            e.to_string().contains("0000000000000000.wal: at byte 0"),
            "{e}"
        );
    }
}
