//! A cluster as etcd's flags describe it, shared by every command that
//! restores, issues certificates for, bundles or inspects members: the
//! `--initial-cluster` model with member and cluster IDs exactly as etcd
//! computes them ([`membership`]), the flags and environment file a member
//! starts with ([`flags`]), and the kubeadm static pod that runs it
//! ([`podspec`]).

pub mod flags;
pub mod membership;
pub mod podspec;
