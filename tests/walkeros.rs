//! The real walkerOS packages from npm, unmodified, in flowhost and in Node.
//!
//! `@walkeros/collector` 4.2.1 with `@walkeros/server-destination-api` 4.2.1 (whose `sendServer`
//! uses `node:http`) and an inline recording destination run the event corpus of
//! `tests/events/` in both; what the api destinations POST to a sink on 127.0.0.1 and what the
//! inline destination records must be the same, byte for byte except for ids and times.
//!
//! These tests need Node and npm (for the packages, esbuild and the reference run) and skip with
//! a message without them; `.ci/setup` installs both.

mod support;
#[path = "support/walkeros.rs"]
mod walkeros;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{exec_with_sink, flowhost, shared_cache};
use walkeros::{first_difference, normalize_volatile, start_recording_sink};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/events")
}

/// Everything the tests below need from npm, or `None` (after saying why) to skip.
fn prepare() -> Option<PathBuf> {
    if let Some(why) = walkeros::node_missing() {
        eprintln!("skipping: {why}");
        return None;
    }
    Some(walkeros::workdir().expect("the npm work directory is prepared"))
}

/// What the corpus entry does around `startFlow`: the inline destination's `$code:` calls
/// `__corpusRecord`, each record is kept as the engine's own JSON text, and the control event
/// `{"__control":"finish"}` waits for every push, shuts the collector down (which flushes the
/// batches) and returns the records. Lines with `command` are walker commands.
const CORPUS_HARNESS: &str = r#"
const records = [];
globalThis.__corpusRecord = (kind, value) => { records.push(JSON.stringify({ kind, ...value })); };
const pending = new Set();

export async function push(event) {
  if (event !== null && typeof event === 'object' && event.__control === 'finish') {
    await Promise.allSettled([...pending]);
    await collector.command('shutdown');
    return records;
  }
  const pushed = event !== null && typeof event === 'object' && typeof event.command === 'string'
    ? elb(event.command, event.data)
    : elb(event);
  pending.add(pushed);
  try {
    return JSON.stringify(await pushed);
  } finally {
    pending.delete(pushed);
  }
}
"#;

/// One run's outputs: the result of each line, the records, and the sink's requests (sorted:
/// the api destinations send concurrently, so arrival order is not part of the contract).
struct Outputs {
    results: Vec<serde_json::Value>,
    records: Vec<String>,
    requests: Vec<String>,
}

fn outputs(stdout: &str, mut requests: Vec<String>) -> Outputs {
    let mut results: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!(
                    "bad output line ({e}): {}",
                    l.chars().take(300).collect::<String>()
                )
            })
        })
        .collect();
    let finish = results.pop().expect("the control line has a result");
    assert_eq!(finish["ok"], true, "the control call failed: {finish}");
    let records = finish["result"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| normalize_volatile(r.as_str().expect("a record is JSON text")))
        .collect();
    for request in &mut requests {
        *request = normalize_volatile(request);
    }
    requests.sort();
    Outputs {
        results,
        records,
        requests,
    }
}

/// Compares two runs and panics with the first difference of each kind.
fn assert_same(flowhost: &Outputs, node: &Outputs, corpus: &[&str]) {
    let short = |text: &str| text.chars().take(200).collect::<String>();
    assert_eq!(flowhost.results.len(), node.results.len(), "result lines");
    for (i, (ours, theirs)) in flowhost.results.iter().zip(&node.results).enumerate() {
        let line = short(corpus[i]);
        assert_eq!(
            ours["ok"],
            theirs["ok"],
            "line {}: {line}\nflowhost: {}\nnode: {}",
            i + 1,
            short(&ours.to_string()),
            short(&theirs.to_string())
        );
        if ours["ok"] == true {
            // Push results are the engine's own JSON text of elb's result.
            let text = |v: &serde_json::Value| match v.as_str() {
                Some(json) => normalize_volatile(json),
                None => normalize_volatile(&v.to_string()),
            };
            let (ours, theirs) = (text(&ours["result"]), text(&theirs["result"]));
            if let Some(difference) = first_difference(&ours, &theirs) {
                panic!("push result of line {} ({line}) {difference}", i + 1);
            }
        }
    }
    assert_eq!(
        flowhost.records.len(),
        node.records.len(),
        "records of the inline destination"
    );
    for (i, (ours, theirs)) in flowhost.records.iter().zip(&node.records).enumerate() {
        if let Some(difference) = first_difference(ours, theirs) {
            panic!("record {i} of the inline destination {difference}");
        }
    }
    assert_eq!(
        flowhost.requests.len(),
        node.requests.len(),
        "requests the api destinations sent"
    );
    for (ours, theirs) in flowhost.requests.iter().zip(&node.requests) {
        if let Some(difference) = first_difference(ours, theirs) {
            panic!("a request the api destinations sent (sorted) {difference}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_and_api_destination_match_node_on_the_event_corpus() {
    let Some(workdir) = prepare() else { return };
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(events_dir().join("flow.json")).unwrap())
            .unwrap();
    let entry = workdir.join("corpus-entry.mjs");
    std::fs::write(
        &entry,
        walkeros::entry_source(&config, "corpus", CORPUS_HARNESS),
    )
    .unwrap();
    let bundle = workdir.join("corpus-bundle.mjs");
    walkeros::bundle(&workdir, &entry, &bundle).unwrap();

    let corpus = std::fs::read_to_string(events_dir().join("corpus.jsonl")).unwrap();
    let lines: Vec<&str> = corpus.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 40, "the corpus has {} events", lines.len());
    let input = format!("{}\n{{\"__control\":\"finish\"}}\n", lines.join("\n"));

    let sink = start_recording_sink(Duration::ZERO).await;
    let cache = shared_cache();
    let run = flowhost(
        &[
            "exec",
            bundle.to_str().unwrap(),
            "--env",
            &format!("SINK_URL={}", sink.url),
        ],
        &[
            ("CACHE_DIR", cache.to_str().unwrap()),
            ("FLOWHOST_HTTP_ALLOW_HOSTS", "127.0.0.1"),
            ("FLOWHOST_LOG", "warn"),
        ],
        &input,
    )
    .await;
    assert!(
        run.status == Some(0) || run.status == Some(3),
        "flowhost exec failed: {}",
        run.stderr
    );
    let ours = outputs(&run.stdout, sink.requests.lock().unwrap().clone());

    let sink = start_recording_sink(Duration::ZERO).await;
    let stdout = walkeros::run_in_node(&workdir, &entry, &input, &[("SINK_URL", &sink.url)])
        .await
        .unwrap();
    let theirs = outputs(&stdout, sink.requests.lock().unwrap().clone());

    assert!(
        !theirs.requests.is_empty() && !theirs.records.is_empty(),
        "the reference run sent and recorded something"
    );
    assert_same(&ours, &theirs, &lines);
    eprintln!(
        "{} events: {} results, {} records, {} requests identical",
        lines.len(),
        ours.results.len(),
        ours.records.len(),
        ours.requests.len()
    );
}

/// A flow whose api destination and a probe destination both call `sendServer` (node:http)
/// with a 1 s timeout; the probe records what `sendServer` resolved with and when.
const SLOW_SINK_ENTRY: &str = r#"
import { startFlow } from '@walkeros/collector';
import { destinationAPI } from '@walkeros/server-destination-api';
import { sendServer } from '@walkeros/server-core';

const TIMEOUT_MS = 1000;
const outcomes = [];
let received = 0;
const { collector, elb } = await startFlow({
  destinations: {
    api: { code: destinationAPI, config: { settings: { url: process.env.SINK_URL, timeout: TIMEOUT_MS } } },
    probe: {
      code: {
        type: 'probe',
        config: {},
        push: async (event) => {
          const started = Date.now();
          const result = await sendServer(process.env.SINK_URL, JSON.stringify(event), { timeout: TIMEOUT_MS });
          outcomes.push({ ok: result.ok, error: result.error, ms: Date.now() - started });
        },
      },
    },
    intake: { code: { type: 'intake', config: {}, push: () => { received++; } } },
  },
});

const pending = new Set();
export async function push(event) {
  if (event.__control === 'outcomes') {
    await Promise.allSettled([...pending]);
    return { received, outcomes };
  }
  const pushed = elb(event);
  pending.add(pushed);
  try {
    return (await pushed).ok;
  } finally {
    pending.delete(pushed);
  }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_server_against_a_slow_sink_times_out_on_time_without_holding_up_other_events() {
    let Some(workdir) = prepare() else { return };
    let entry = workdir.join("slow-sink-entry.mjs");
    std::fs::write(&entry, SLOW_SINK_ENTRY).unwrap();
    let bundle = workdir.join("slow-sink-bundle.mjs");
    walkeros::bundle(&workdir, &entry, &bundle).unwrap();

    // The sink answers after 2 s, twice the destinations' timeout.
    let sink = start_recording_sink(Duration::from_secs(2)).await;
    let events = 100;
    let mut input: String = (0..events)
        .map(|i| format!("{{\"name\":\"page view\",\"data\":{{\"n\":{i}}}}}\n"))
        .collect();
    input.push_str("{\"__control\":\"outcomes\"}\n");
    let run = exec_with_sink(&bundle, &sink.url, &input).await;
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), events + 1);
    let report = &lines[events]["result"];

    // Every event reached the collector and its other destinations.
    assert_eq!(report["received"], events, "{report}");
    // All requests of both destinations were open at the sink at once: the slow destination
    // did not make events wait for each other.
    let in_flight = sink.max_in_flight.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        in_flight >= events,
        "at most {in_flight} requests were open at once"
    );
    // Each sendServer resolved with its own timeout, before the sink answered, and not before
    // the configured time (a timer never fires early).
    let outcomes = report["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), events);
    let mut times: Vec<u64> = Vec::new();
    for outcome in outcomes {
        assert_eq!(outcome["ok"], false, "{outcome}");
        assert_eq!(outcome["error"], "Request timeout", "{outcome}");
        let ms = outcome["ms"].as_u64().unwrap();
        assert!(ms >= 1000, "the timeout fired early: {outcome}");
        times.push(ms);
    }
    times.sort_unstable();
    eprintln!(
        "sendServer timeout of 1000 ms fired after {}..{} ms (median {} ms) for {events} concurrent \
         events; {in_flight} requests open at the sink at once",
        times[0],
        times[times.len() - 1],
        times[times.len() / 2]
    );
}
