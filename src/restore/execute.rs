//! `restore` as a library operation, second half: a [`Plan`] carried out.
//! The snapshot is verified while every member's data dir is staged from it
//! ([`super::source`]); nothing is swapped in before the snapshot passed and
//! every member's files are staged and fsynced. Then every member is swapped
//! in and the `.env` files written, all through the durable write path; on
//! any failure every member and `.env` file is put back as it was. A Ctrl-C
//! or SIGTERM (see [`crate::interrupt`]) stops the staging the same way.

use std::path::PathBuf;

use super::datadir::{Options, stage_members};
use super::plan::{Event, Plan, Report, RunError};
use super::source::{Opened, Passed, verify_beside};
use super::stale::{StaleReport, report};
use crate::cluster::flags::env_text;
use crate::cluster::membership::Member;
use crate::durable;
use crate::durable::swap;

/// What the staging side of a restore hands back once every member is
/// staged.
struct Prepared {
    stale: StaleReport,
    staged: Vec<swap::Staged>,
}

/// Restores every member of `plan`; what comes back stale is in the
/// report handed to `on` as [`Event::Staged`] before anything is swapped in.
/// Returns the report with where each old member dir went.
pub fn execute(plan: &Plan, on: &mut (dyn FnMut(Event<'_>) + Send)) -> Result<Report, RunError> {
    let req = &plan.request;
    let opts = Options {
        bump_revision: plan.bump,
        clear_alarms: req.clear_alarms,
        force: req.force,
        owner: req.owner.map(|o| o.ids()),
    };
    let prepared = verify_beside(
        &plan.file,
        req.skip_hash_check,
        req.target_version.as_deref(),
        |o: Opened<'_>| stage_all(plan, &opts, o, &mut *on),
    );
    let discard = |p: Option<Result<Prepared, RunError>>| {
        if let Some(Ok(p)) = p {
            p.staged.into_iter().for_each(swap::Staged::discard);
        }
    };
    let passed = match prepared {
        Ok(p) => p,
        Err(refused) => {
            let err = refused.discard_with(discard);
            return Err(match err {
                super::source::SourceError::Unsound { report, .. } => RunError::Unsound(report),
                err => RunError::Refused(err),
            });
        }
    };
    let Passed {
        checks,
        snapshot_release,
        target,
        work,
        ..
    } = passed;
    let Prepared { stale, staged } = work?;
    let mut report = plan.report(
        &checks,
        snapshot_release,
        target,
        stale,
        plan.members.clone(),
    );
    // The restore goes ahead: the operator sees what comes back stale first.
    on(Event::Staged(&report));
    let committed = commit_all(&report, staged, on)?;
    for (m, c) in report.members.iter_mut().zip(committed) {
        m.moved_aside = c.backups.iter().map(|b| b.display().to_string()).collect();
        c.finish().map_err(RunError::Finish)?;
    }
    Ok(report)
}

/// The work beside the verifier: what a killed run left is cleaned (each
/// line said through `on`), every target checked, then every member staged.
fn stage_all(
    plan: &Plan,
    opts: &Options,
    o: Opened<'_>,
    on: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<Prepared, RunError> {
    let stale = report(&o.db, &plan.request.prefix).map_err(RunError::Stale)?;
    let targets: Vec<swap::Target> = plan.members.iter().map(|m| m.target()).collect();
    // What a killed run left is cleaned (and said) before the targets are judged.
    for t in &targets {
        for line in swap::clean_stale(t).map_err(RunError::Clean)? {
            on(Event::Cleaned(&line));
        }
    }
    if let Some(d) = &plan.env_dir {
        for line in swap::clean_stale_temp_files(d).map_err(RunError::Clean)? {
            on(Event::Cleaned(&line));
        }
    }
    // Every target is checked before anything is written.
    let mut checked = Vec::new();
    for (t, m) in targets.iter().zip(&plan.members) {
        checked.push(
            swap::check(t, plan.request.force).map_err(|err| RunError::Member {
                name: m.member.name.clone(),
                err,
            })?,
        );
    }
    let restored = o.restored(&plan.cluster, opts).map_err(RunError::Restore)?;
    let src = restored.source(&plan.cluster);
    let members: Vec<&Member> = plan.members.iter().map(|m| &m.member).collect();
    // Every member's db is the same: the first is built and verified, the
    // others are checked copies of it.
    let staged = stage_members(&src, &members, checked, opts.owner)
        .map_err(|e| RunError::NothingRestored(Box::new(RunError::Restore(e))))?;
    Ok(Prepared { stale, staged })
}

/// Swaps every staged member in and writes the `.env` files; on any failure
/// puts every member (and `.env` file) back as it was.
fn commit_all(
    report: &Report,
    staged: Vec<swap::Staged>,
    on: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<Vec<swap::Committed>, RunError> {
    let mut committed = Vec::new();
    let mut env_before: Vec<(PathBuf, Option<Vec<u8>>)> = Vec::new();
    let mut staged = staged.into_iter();
    let written = (|| -> Result<(), RunError> {
        for (m, s) in report.members.iter().zip(staged.by_ref()) {
            let c = swap::commit(s).map_err(|err| RunError::Member {
                name: m.member.name.clone(),
                err,
            })?;
            for line in &c.undone {
                on(Event::Undone(line));
            }
            committed.push(c);
        }
        for m in &report.members {
            if let Some(env) = &m.env_file {
                let env = PathBuf::from(env);
                env_before.push((env.clone(), std::fs::read(&env).ok()));
                durable::write_atomic(&env, env_text(&m.flags).as_bytes()).map_err(RunError::Io)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = written {
        // Put every member (and .env file) back as it was.
        staged.for_each(swap::Staged::discard);
        for c in committed.into_iter().rev() {
            c.rollback();
        }
        for (env, old) in env_before.iter().rev() {
            let _ = match old {
                Some(bytes) => durable::write_atomic(env, bytes).map_err(|e| e.to_string()),
                None => std::fs::remove_file(env).map_err(|e| e.to_string()),
            };
        }
        return Err(RunError::NothingRestored(Box::new(e)));
    }
    Ok(committed)
}
