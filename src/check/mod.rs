//! `check`: the verdict a backup pipeline needs on a snapshot — `verify`
//! plus the rules of a policy (objects per resource, namespaces, named
//! objects, decodable values, encryption, size, revision and age bounds) —
//! reported per rule, as text, JSON or JUnit XML.
//!
//! Why it exists: a backup job that only checks that the file exists lets a
//! broken or half-empty snapshot sit unnoticed for weeks. The pieces:
//! [`policy`] parses the YAML policy (unknown rules refused, with the line),
//! [`facts`] reads what the rules need from the snapshot in one pass over
//! its live keys, [`rules`] judges, [`junit`] writes the JUnit report.

pub mod facts;
pub mod html;
pub mod junit;
pub mod policy;
pub mod rules;
