//! `flowhost validate` on the config corpus, through the real binary: every broken config
//! exits 1 with its own message and no panic, every valid one exits 0.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus(kind: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/configs")
        .join(kind)
        .join(name)
}

struct Output {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `flowhost validate` without the variables the corpus refers to.
fn validate(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowhost"));
    command
        .arg("validate")
        .args(args)
        .env_remove("SINK_URL")
        .env_remove("FLOW_NAME")
        .env_remove("WALKEROS_FLOW_NAME")
        .env("FLOWHOST_LOG", "warn");
    for (name, value) in envs {
        command.env(name, value);
    }
    let output = command.output().expect("the flowhost binary runs");
    Output {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Each broken config: file, extra arguments, and text its error line must contain.
const BROKEN: &[(&str, &[&str], &str)] = &[
    (
        "bad-inline-semver.json",
        &[],
        "flows.default.destinations.api.package: version \"4..2\" of \
         @walkeros/server-destination-api is not a valid semver range",
    ),
    (
        "bad-json-trailing-comma.json",
        &[],
        "invalid JSON at line 25, column 13: trailing comma",
    ),
    (
        "bad-json-truncated.json",
        &[],
        "invalid JSON at line 22, column 0: EOF while parsing a value",
    ),
    (
        "bad-semver.json",
        &[],
        "flows.default.config.bundle.packages.@walkeros/server-destination-api.version: version \
         \"^4.2.1.0\" of @walkeros/server-destination-api is not a valid semver range",
    ),
    (
        "bundle-unknown-field.json",
        &[],
        "flows.default.config.bundle.extrnal: unknown field \"extrnal\"",
    ),
    (
        "code-empty.json",
        &[],
        "flows.default.destinations.api.code.push: inline code is empty",
    ),
    (
        "code-unbalanced.json",
        &[],
        "map.title.fn: inline JavaScript does not parse: \"{\" at character 12 is never closed",
    ),
    (
        "code-unterminated-string.json",
        &[],
        "map.title.fn: inline JavaScript does not parse: the string opened with ' at character \
         12 is never closed",
    ),
    (
        "conflicting-inline-versions.json",
        &[],
        "Conflicting inline versions for @walkeros/server-destination-api: \"4.2.1\" and \
         \"4.1.0\"",
    ),
    (
        "contract-extend-cycle.json",
        &[],
        "contract.b.extend: Circular extend chain detected: a -> b -> a",
    ),
    (
        "cyclic-flow-ref.json",
        &["--flow", "default"],
        "flows.edge.config.url: Cyclic $flow reference: default -> edge -> default",
    ),
    (
        "cyclic-var.json",
        &[],
        "Cyclic $var reference: base -> url -> host -> base",
    ),
    (
        "destination-without-package-or-code.json",
        &[],
        "flows.default.destinations.api: Destination must specify either \"package\" or \"code\"",
    ),
    (
        "env-in-bundle-version.json",
        &[],
        "bundle settings are needed when the flow is bundled and cannot use $env or $secret",
    ),
    (
        "import-without-package.json",
        &[],
        "flows.default.destinations.api.import: \"import\" requires \"package\"",
    ),
    (
        "invalid-import-identifier.json",
        &[],
        "\"destination-api\" is not a valid JavaScript identifier",
    ),
    (
        "invalid-package-name.json",
        &[],
        "\"@WalkerOS/Destination_API\" is not a valid npm package name",
    ),
    (
        "invalid-platform.json",
        &[],
        "flows.default.config.platform: platform must be \"web\" or \"server\", found \"edge\"",
    ),
    (
        "invalid-step-id.json",
        &[],
        "Invalid destinations name \"gtag-wrapper\": must be a valid JavaScript identifier",
    ),
    (
        "many-in-destination-route.json",
        &[],
        "flows.default.destinations.api.before.many: invalid route: \"many\" is not allowed in \
         a destination's routes",
    ),
    (
        "missing-env-without-default.json",
        &["--check-env"],
        "missing environment variable SINK_URL",
    ),
    (
        "missing-platform.json",
        &[],
        "flow \"default\" must have config.platform set to \"web\" or \"server\"",
    ),
    ("missing-var.json", &[], "Variable \"sinkHost\" not found"),
    (
        "missing-version.json",
        &[],
        "version: missing \"version\"; flow configs start with \"version\": 4",
    ),
    (
        "multiple-flows-no-name.json",
        &[],
        "Multiple flows found. Please specify a flow using --flow flag or FLOW_NAME. Available \
         flows: default, other",
    ),
    ("no-flows.json", &[], "At least one flow is required"),
    (
        "non-scalar-inline-var.json",
        &[],
        "Variable \"sink\" resolves to non-scalar (object) and cannot be inlined into a string",
    ),
    (
        "obsolete-code-string.json",
        &[],
        "code: \"sourceExpress\" is no longer supported",
    ),
    (
        "package-and-code.json",
        &[],
        "Destination sets both \"package\" and \"code\"",
    ),
    (
        "secret-in-web-flow.json",
        &[],
        "Secret \"$secret.API_KEY\" cannot be used in a web flow",
    ),
    (
        "secret-inside-string.json",
        &[],
        "\"Bearer $secret.API_TOKEN\" is not a usable secret reference",
    ),
    (
        "secret-lowercase-name.json",
        &[],
        "\"$secret.api_key\" is not a usable secret reference",
    ),
    (
        "step-config-not-object.json",
        &[],
        "flows.default.destinations.api.config: expected an object, found a string",
    ),
    (
        "step-id-starts-with-digit.json",
        &[],
        "Invalid sources name \"9http\": must be a valid JavaScript identifier",
    ),
    (
        "top-level-array.json",
        &[],
        "expected a JSON object at the top level, found an array",
    ),
    (
        "unknown-contract.json",
        &[],
        "Contract \"shop\" not found; available contracts: web",
    ),
    (
        "unknown-flow-name.json",
        &["--flow", "prod"],
        "Flow \"prod\" not found in configuration. Available flows: default, staging",
    ),
    (
        "unknown-flow-ref.json",
        &[],
        "$flow.server cannot resolve: flow \"server\" does not exist in this config",
    ),
    (
        "unknown-route-target.json",
        &[],
        "route target \"enrich\" is not a transformer of this flow",
    ),
    (
        "unknown-source-field.json",
        &[],
        "flows.default.sources.http.terminus: unknown field \"terminus\"",
    ),
    (
        "unknown-store-ref.json",
        &[],
        "\"$store.cache\" refers to store \"cache\", which is not defined",
    ),
    (
        "unsupported-version.json",
        &[],
        "unsupported flow config version 5",
    ),
    (
        "v1-both-web-and-server.json",
        &[],
        "a version 1 flow needs exactly one of \"web\" or \"server\"",
    ),
    (
        "v2-definition-shadows-variable.json",
        &[],
        "definition \"demo\" has the same name as a variable",
    ),
    (
        "var-path-not-found.json",
        &[],
        "Path \"hostname\" not found in \"$var.sink\"",
    ),
    (
        "version-as-string.json",
        &[],
        "unsupported flow config version \"4\"",
    ),
];

#[test]
fn every_broken_config_fails_validation_with_its_own_message() {
    for &(name, args, expected) in BROKEN {
        let file = corpus("broken", name);
        let mut all_args = vec![file.to_str().unwrap()];
        all_args.extend_from_slice(args);
        let run = validate(&all_args, &[]);
        assert_eq!(run.status, Some(1), "{name}: stderr {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
        // The problem is one line that names the file and says what is wrong.
        let line = run
            .stderr
            .lines()
            .find(|line| line.contains(expected))
            .unwrap_or_else(|| panic!("{name}: expected {expected:?} in:\n{}", run.stderr));
        assert!(
            line.starts_with(&file.display().to_string()),
            "{name}: {line}"
        );
        assert!(run.stdout.is_empty(), "{name}: {}", run.stdout);
    }
}

#[test]
fn the_corpus_table_lists_every_broken_config() {
    let mut files: Vec<String> = std::fs::read_dir(corpus("broken", ""))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let mut listed: Vec<&str> = BROKEN.iter().map(|(name, ..)| *name).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn valid_configs_pass_and_say_which_flow_was_checked() {
    for (name, args) in [
        ("collect-api.json", &[][..]),
        ("collect-noop.json", &[]),
        ("legacy-v2.json", &[]),
        ("legacy-v3.json", &[]),
        ("all-references.json", &["--flow", "warehouse"]),
    ] {
        let file = corpus("valid", name);
        let mut all_args = vec![file.to_str().unwrap()];
        all_args.extend_from_slice(args);
        let run = validate(&all_args, &[]);
        assert_eq!(run.status, Some(0), "{name}: {}", run.stderr);
        assert!(run.stdout.contains("is valid"), "{name}: {}", run.stdout);
    }
}

#[test]
fn the_flow_is_selected_by_flow_name_from_the_environment() {
    let file = corpus("valid", "all-references.json");
    let run = validate(&[file.to_str().unwrap()], &[("FLOW_NAME", "warehouse")]);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("flow \"warehouse\" is valid"));

    // A web flow loads, but flowhost cannot run it.
    let run = validate(&[file.to_str().unwrap(), "--flow", "web"], &[]);
    assert_eq!(run.status, Some(1));
    assert!(
        run.stderr
            .contains("flows.web.config.platform: flow \"web\" is a web flow"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_environment_check_accepts_variables_given_on_the_command_line() {
    let file = corpus("broken", "missing-env-without-default.json");
    let run = validate(
        &[
            file.to_str().unwrap(),
            "--check-env",
            "--env",
            "SINK_URL=http://127.0.0.1:1/sink",
        ],
        &[],
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    // Without the check, a server flow's environment is only known where it runs.
    let run = validate(&[file.to_str().unwrap()], &[]);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
}

#[test]
fn a_missing_file_is_one_clear_error() {
    let run = validate(&["/nonexistent/flow.json"], &[]);
    assert_eq!(run.status, Some(1));
    assert!(
        run.stderr.contains("/nonexistent/flow.json"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"));
}
