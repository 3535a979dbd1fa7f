//! The guest's Web globals and Node modules against Node itself: the probe flows under
//! `tests/flows/` run case by case in flowhost and in Node, and every result must be the same.
//! They need Node (and npm, for esbuild) and skip with a message without them.

mod support;
#[path = "support/walkeros.rs"]
mod walkeros;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{exec_with_sink, flow};
use walkeros::start_recording_sink;

/// Runs `cases` of `module` (a file flowhost can run) in flowhost and of `reference` in Node,
/// both with `SINK_URL` pointing at a sink on 127.0.0.1, and compares the results.
async fn compare_with_node(module: &Path, reference: &Path, workdir: &Path, cases: &[&str]) {
    let input: String = cases.iter().map(|c| format!("\"{c}\"\n")).collect();
    let sink = start_recording_sink(Duration::ZERO).await;
    let run = exec_with_sink(module, &sink.url, &input).await;
    let ours = run.lines();
    let theirs: Vec<serde_json::Value> =
        walkeros::run_in_node(workdir, reference, &input, &[("SINK_URL", &sink.url)])
            .await
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(ours.len(), cases.len(), "stderr: {}", run.stderr);
    for ((case, ours), theirs) in cases.iter().zip(&ours).zip(&theirs) {
        assert_eq!(ours["ok"], true, "case {case} failed in flowhost: {ours}");
        assert_eq!(theirs["ok"], true, "case {case} failed in Node: {theirs}");
        assert_eq!(
            ours["result"], theirs["result"],
            "case {case}: flowhost (left) and Node (right) differ"
        );
    }
}

fn prepare() -> Option<PathBuf> {
    if let Some(why) = walkeros::node_missing() {
        eprintln!("skipping: {why}");
        return None;
    }
    Some(walkeros::workdir().expect("the npm work directory is prepared"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_globals_behave_as_in_node() {
    let Some(workdir) = prepare() else { return };
    // Globals need no bundling: the probe runs as it is in both.
    let probe = flow("web-globals.mjs");
    compare_with_node(
        &probe,
        &probe,
        &workdir,
        &[
            "url",
            "searchParams",
            "encoding",
            "crypto",
            "clone",
            "abort",
            "fetch",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_modules_behave_as_in_node() {
    let Some(workdir) = prepare() else { return };
    let probe = flow("node-modules.mjs");
    let bundle = workdir.join("node-modules-bundle.mjs");
    walkeros::bundle(&workdir, &probe, &bundle).unwrap();
    compare_with_node(
        &bundle,
        &probe,
        &workdir,
        &[
            "buffer", "errors", "crypto", "events", "stream", "util", "url", "assert", "http",
        ],
    )
    .await;
}
