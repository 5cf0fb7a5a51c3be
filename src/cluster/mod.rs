//! A cluster as etcd's flags describe it, shared by every command that
//! restores, issues certificates for, bundles or inspects members: the
//! `--initial-cluster` model with member and cluster IDs exactly as etcd
//! computes them ([`membership`]), the flags and environment file a member
//! starts with ([`flags`]), the kubeadm static pod that runs it
//! ([`podspec`]), and which member a data dir already holds ([`datadir`]).

pub mod datadir;
pub mod flags;
pub mod membership;
pub mod podspec;
