//! `check --html FILE`: the verdict page a CI job attaches beside its JUnit
//! report — per snapshot, whether it passed and every rule's result, the
//! failed ones first and marked — in the shared page shell
//! ([`crate::html`]: no request of any kind, names escaped).

use maud::html;

use super::rules::RuleResult;
use crate::html::{page, shown};

/// The page for `(snapshot name, rule results)` pairs, as `check` judged
/// them.
pub fn report(runs: &[(String, Vec<RuleResult>)]) -> String {
    let passed = runs
        .iter()
        .filter(|(_, rules)| rules.iter().all(|r| r.passed))
        .count();
    let failed = runs.len() - passed;
    let body = html! {
        header {
            h1 { "etcdsnap check" }
            p #verdict data-v=(failed) class=(if failed == 0 { "good" } else { "bad" }) {
                @if failed == 0 {
                    "All " (runs.len()) " snapshots passed."
                } @else {
                    (failed) " of " (runs.len()) " snapshots failed."
                }
            }
            p.muted {
                span #snapshots data-v=(runs.len()) { (runs.len()) " snapshots" } ", "
                span #passed data-v=(passed) { (passed) " passed" } ", "
                span #failed data-v=(failed) { (failed) " failed" } "."
            }
        }
        @for (snapshot, rules) in runs {
            @let ok = rules.iter().all(|r| r.passed);
            @let bad = rules.iter().filter(|r| !r.passed).count();
            section.snapshot data-snapshot=(snapshot) data-passed=(ok) {
                h2 {
                    (shown(snapshot)) ": "
                    span class=(if ok { "good" } else { "bad" }) {
                        @if ok { "passed" } @else { "FAILED (" (bad) " of " (rules.len()) " rules)" }
                    }
                }
                div.scroll {
                    table.sortable.rules {
                        thead { tr { th { "rule" } th { "result" } th { "detail" } } }
                        tbody {
                            // The failed rules first, each group in the order judged.
                            @for r in rules.iter().filter(|r| !r.passed).chain(rules.iter().filter(|r| r.passed)) {
                                tr.rule data-rule=(r.rule) data-passed=(r.passed) {
                                    td.name { (shown(&r.rule)) }
                                    td class=(if r.passed { "good" } else { "bad" }) {
                                        @if r.passed { "ok" } @else { "FAIL" }
                                    }
                                    td.name { (shown(&r.message)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("etcdsnap check", "etcdsnap check --html", body)
}
