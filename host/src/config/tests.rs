//! Whole-loader tests: the corpus of broken configs (each must fail with its own error at its
//! own JSON path), the valid configs (the bench flows and one per reference type), and a
//! mutation run that feeds damaged configs to the loader to show it never panics.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;

/// The config corpus at the workspace root: `tests/configs/broken/` and `tests/configs/valid/`.
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/configs");

fn corpus(kind: &str, name: &str) -> PathBuf {
    Path::new(CORPUS).join(kind).join(name)
}

/// Broken configs: file, flow to select, whether to check `$env` against an empty environment,
/// the expected error code and the JSON path it must name.
const BROKEN: &[(&str, Option<&str>, bool, &str, &str)] = &[
    ("bad-json-trailing-comma.json", None, false, "json", ""),
    ("bad-json-truncated.json", None, false, "json", ""),
    ("top-level-array.json", None, false, "wrong_type", ""),
    (
        "missing-version.json",
        None,
        false,
        "missing_version",
        "version",
    ),
    (
        "unsupported-version.json",
        None,
        false,
        "unsupported_version",
        "version",
    ),
    (
        "version-as-string.json",
        None,
        false,
        "unsupported_version",
        "version",
    ),
    ("no-flows.json", None, false, "no_flows", "flows"),
    (
        "multiple-flows-no-name.json",
        None,
        false,
        "multiple_flows",
        "flows",
    ),
    (
        "unknown-flow-name.json",
        Some("prod"),
        false,
        "unknown_flow",
        "flows",
    ),
    (
        "missing-platform.json",
        None,
        false,
        "missing_platform",
        "flows.default.config.platform",
    ),
    (
        "invalid-platform.json",
        None,
        false,
        "invalid_platform",
        "flows.default.config.platform",
    ),
    (
        "invalid-step-id.json",
        None,
        false,
        "invalid_step_id",
        "flows.default.destinations.gtag-wrapper",
    ),
    (
        "step-id-starts-with-digit.json",
        None,
        false,
        "invalid_step_id",
        "flows.default.sources.9http",
    ),
    (
        "package-and-code.json",
        None,
        false,
        "package_and_code",
        "flows.default.destinations.api",
    ),
    (
        "destination-without-package-or-code.json",
        None,
        false,
        "no_implementation",
        "flows.default.destinations.api",
    ),
    (
        "obsolete-code-string.json",
        None,
        false,
        "obsolete_code_string",
        "flows.default.sources.http.code",
    ),
    (
        "import-without-package.json",
        None,
        false,
        "import_without_package",
        "flows.default.destinations.api.import",
    ),
    (
        "invalid-import-identifier.json",
        None,
        false,
        "invalid_identifier",
        "flows.default.destinations.api.import",
    ),
    (
        "unknown-source-field.json",
        None,
        false,
        "unknown_field",
        "flows.default.sources.http.terminus",
    ),
    (
        "invalid-package-name.json",
        None,
        false,
        "invalid_package_name",
        "flows.default.destinations.api.package",
    ),
    (
        "bad-semver.json",
        None,
        false,
        "invalid_version",
        "flows.default.config.bundle.packages.@walkeros/server-destination-api.version",
    ),
    (
        "bad-inline-semver.json",
        None,
        false,
        "invalid_version",
        "flows.default.destinations.api.package",
    ),
    (
        "conflicting-inline-versions.json",
        None,
        false,
        "conflicting_inline_versions",
        "flows.default.destinations.copy.package",
    ),
    (
        "bundle-unknown-field.json",
        None,
        false,
        "unknown_field",
        "flows.default.config.bundle.extrnal",
    ),
    (
        "env-in-bundle-version.json",
        None,
        false,
        "runtime_value_in_bundle",
        "flows.default.config.bundle.packages.@walkeros/server-destination-api.version",
    ),
    (
        "cyclic-var.json",
        None,
        false,
        "variable_cycle",
        "flows.default.destinations.api.config.settings.url",
    ),
    (
        "missing-var.json",
        None,
        false,
        "variable_not_found",
        "flows.default.destinations.api.config.settings.url",
    ),
    (
        "non-scalar-inline-var.json",
        None,
        false,
        "variable_not_scalar",
        "flows.default.destinations.api.config.settings.url",
    ),
    (
        "var-path-not-found.json",
        None,
        false,
        "path_not_found",
        "flows.default.destinations.api.config.settings.url",
    ),
    (
        "missing-env-without-default.json",
        None,
        true,
        "missing_env",
        "flows.default.destinations.api.config.settings.url",
    ),
    (
        "secret-inside-string.json",
        None,
        false,
        "invalid_secret_ref",
        "flows.default.destinations.api.config.settings.headers.Authorization",
    ),
    (
        "secret-lowercase-name.json",
        None,
        false,
        "invalid_secret_ref",
        "flows.default.destinations.api.config.settings.headers.X-Api-Key",
    ),
    (
        "secret-in-web-flow.json",
        None,
        false,
        "secret_in_web_flow",
        "flows.default.destinations.api.config.settings.headers.X-Api-Key",
    ),
    (
        "unknown-flow-ref.json",
        None,
        true,
        "flow_ref_unknown",
        "flows.default.destinations.api.config.settings.url",
    ),
    (
        "cyclic-flow-ref.json",
        Some("default"),
        false,
        "flow_ref_cycle",
        "flows.edge.config.url",
    ),
    (
        "unknown-contract.json",
        None,
        false,
        "contract_not_found",
        "flows.default.destinations.api.config.settings.schema",
    ),
    (
        "contract-extend-cycle.json",
        None,
        false,
        "contract_extend_cycle",
        "contract.b.extend",
    ),
    (
        "code-unbalanced.json",
        None,
        false,
        "invalid_code",
        "flows.default.destinations.api.config.mapping.page.view.data.map.title.fn",
    ),
    (
        "code-empty.json",
        None,
        false,
        "empty_code",
        "flows.default.destinations.api.code.push",
    ),
    (
        "code-unterminated-string.json",
        None,
        false,
        "invalid_code",
        "flows.default.destinations.api.config.mapping.page.view.data.map.title.fn",
    ),
    (
        "unknown-route-target.json",
        None,
        false,
        "unknown_route_target",
        "flows.default.sources.http.next",
    ),
    (
        "many-in-destination-route.json",
        None,
        false,
        "invalid_route",
        "flows.default.destinations.api.before.many",
    ),
    (
        "unknown-store-ref.json",
        None,
        false,
        "store_not_found",
        "flows.default.destinations.api.env.cache",
    ),
    (
        "step-config-not-object.json",
        None,
        false,
        "wrong_type",
        "flows.default.destinations.api.config",
    ),
    (
        "v1-both-web-and-server.json",
        None,
        false,
        "upgrade",
        "flows.default",
    ),
    (
        "v2-definition-shadows-variable.json",
        None,
        false,
        "upgrade",
        "definitions.demo",
    ),
];

fn load_broken(name: &str, flow: Option<&str>, check_env: bool) -> ConfigErrors {
    let env = HashMap::new();
    let options = LoadOptions {
        flow_name: flow,
        env: check_env.then_some(&env),
    };
    match load_flow_config_with(&corpus("broken", name), &options) {
        Ok(_) => panic!("{name} loaded without error"),
        Err(errors) => errors,
    }
}

#[test]
fn every_broken_config_fails_with_its_own_error_at_its_path() {
    for &(name, flow, check_env, code, path) in BROKEN {
        let errors = load_broken(name, flow, check_env);
        let found = errors
            .iter()
            .any(|e| e.kind.code() == code && e.json_path == path);
        assert!(
            found,
            "{name}: expected {code} at \"{path}\", got:\n{errors}\n{:?}",
            errors
                .iter()
                .map(|e| (e.kind.code(), &e.json_path))
                .collect::<Vec<_>>()
        );
        // One problem per file: nothing else may be reported.
        assert_eq!(
            errors.len(),
            1,
            "{name} reports more than its one problem:\n{errors}"
        );
        // Each line of the report names the file and, where there is one, the JSON path.
        let text = errors.to_string();
        assert!(
            text.starts_with(&corpus("broken", name).display().to_string()),
            "{text}"
        );
        assert!(
            text.contains(&format!(": {path}: ")) || path.is_empty(),
            "{text}"
        );
    }
}

#[test]
fn the_broken_corpus_is_complete_and_listed() {
    let mut files: Vec<String> = std::fs::read_dir(Path::new(CORPUS).join("broken"))
        .expect("broken corpus directory exists")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = BROKEN.iter().map(|(name, ..)| name.to_string()).collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "every corpus file needs an entry in BROKEN and vice versa"
    );
    assert!(files.len() >= 25);
}

#[test]
fn messages_for_flow_selection_match_the_original() {
    let errors = load_broken("multiple-flows-no-name.json", None, false);
    assert!(errors.to_string().ends_with(
        "flows: Multiple flows found. Please specify a flow using --flow flag or FLOW_NAME. \
         Available flows: default, other"
    ));
    let errors = load_broken("unknown-flow-name.json", Some("prod"), false);
    assert!(errors.to_string().ends_with(
        "flows: Flow \"prod\" not found in configuration. Available flows: default, staging"
    ));
}

#[test]
fn several_problems_are_reported_together() {
    let text = json!({
        "version": 4,
        "flows": {"default": {
            "config": {"platform": "server"},
            "sources": {"my-src": {"package": "Bad Name"}},
            "destinations": {
                "a": {"package": "x", "config": {"url": "$var.nope"}},
                "b": {"package": "x", "config": {"url": "$env.MISSING"}},
                "c": {"code": {"push": "$code:(e) => {"}}
            }
        }}
    })
    .to_string();
    let env = HashMap::new();
    let errors = parse_flow_config(
        &text,
        Path::new("many.json"),
        &LoadOptions {
            flow_name: None,
            env: Some(&env),
        },
    )
    .unwrap_err();
    let codes: Vec<&str> = errors.iter().map(|e| e.kind.code()).collect();
    assert_eq!(
        codes,
        [
            "invalid_step_id",
            "invalid_code",
            "variable_not_found",
            "missing_env",
            "invalid_package_name"
        ],
        "{errors}"
    );
    assert_eq!(errors.to_string().lines().count(), 5);
}

fn load_valid(name: &str, flow: Option<&str>) -> LoadedFlow {
    load_flow_config(&corpus("valid", name), flow)
        .unwrap_or_else(|errors| panic!("{name} must load:\n{errors}"))
}

#[test]
fn bench_flows_load_cleanly() {
    let api = load_valid("collect-api.json", None);
    assert_eq!(api.name, "default");
    assert_eq!(api.platform, Platform::Server);
    assert!(api.warnings.is_empty(), "{:?}", api.warnings);
    assert_eq!(
        api.packages
            .iter()
            .map(|p| (p.name.as_str(), p.version_range.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("@walkeros/collector", Some("4.2.1")),
            ("@walkeros/server-source-express", Some("4.2.1")),
            ("@walkeros/server-destination-api", Some("4.2.1")),
        ]
    );
    assert_eq!(api.packages[0].imports, ["startFlow"]);
    assert_eq!(
        api.destinations[0].code,
        StepCode::Package {
            package: "@walkeros/server-destination-api".into(),
            spec: "@walkeros/server-destination-api".into(),
            import: Some("destinationAPI".into()),
        }
    );
    let url = api.destinations[0]
        .config
        .as_ref()
        .and_then(|c| c.get("settings"))
        .and_then(|s| s.get("url"));
    assert_eq!(
        url,
        Some(&ConfigValue::Runtime(RuntimeRef::Env {
            name: "SINK_URL".into(),
            default: Some("http://127.0.0.1:9901/sink".into()),
        }))
    );

    let noop = load_valid("collect-noop.json", None);
    assert!(noop.warnings.is_empty(), "{:?}", noop.warnings);
    match &noop.destinations[0].code {
        StepCode::Inline(code) => {
            assert_eq!(code.kind.as_deref(), Some("noop"));
            assert!(code.push.starts_with("(event) => {"));
        }
        other => panic!("noop destination should be inline code, got {other:?}"),
    }
}

#[test]
fn every_reference_type_resolves() {
    let flow = load_valid("all-references.json", Some("warehouse"));
    assert!(flow.warnings.is_empty(), "{:?}", flow.warnings);
    let api = &flow.destinations[0];
    let config = serde_json::to_value(api.config.as_ref().unwrap()).unwrap();
    let settings = &config["settings"];
    assert_eq!(
        settings["url"],
        json!({
            "$flowhost": "env",
            "name": "WAREHOUSE_URL",
            "default": "https://ingest.example.com/v1/events"
        })
    );
    assert_eq!(
        settings["backup"],
        json!("https://ingest.example.com/v1/backup")
    );
    assert_eq!(
        settings["headers"]["X-Api-Key"],
        json!({"$flowhost": "secret", "name": "WAREHOUSE_KEY"})
    );
    assert_eq!(
        settings["headers"]["Authorization"],
        json!({"$flowhost": "template", "parts": [
            "Bearer ",
            {"$flowhost": "env", "name": "WAREHOUSE_TOKEN"}
        ]})
    );
    // Step variables override flow variables, which override root variables.
    assert_eq!(settings["headers"]["X-Region"], json!("step-local"));
    assert_eq!(settings["timeout"], json!(4000));
    assert_eq!(settings["publicUrl"], json!("https://www.example.com"));
    assert_eq!(settings["webSettings"], json!({"consentBanner": true}));
    assert_eq!(settings["schema"], json!({"required": ["id", "total"]}));
    assert_eq!(
        settings["cache"],
        json!({"$flowhost": "store", "id": "memory"})
    );
    assert_eq!(config["batch"]["wait"], json!(2000));
    let condition =
        &config["mapping"]["order"]["complete"]["data"]["map"]["items"]["loop"][1]["condition"];
    assert_eq!(
        condition,
        &json!({"$flowhost": "code", "source": "(e) => e.entity === 'product'"})
    );

    let stamp = &flow.transformers[1];
    assert_eq!(
        serde_json::to_value(stamp.config.as_ref().unwrap()).unwrap(),
        json!({"settings": {"tag": "eu-west"}})
    );
    assert_eq!(
        serde_json::to_value(flow.settings.as_ref().unwrap()).unwrap(),
        json!({"region": "eu-west"})
    );
    let collector = serde_json::to_value(flow.collector.as_ref().unwrap()).unwrap();
    assert_eq!(collector["globals"]["currency"], json!("EUR"));
    assert_eq!(collector["hooks"]["prePush"]["$flowhost"], json!("code"));

    // Inline @version fills the unversioned-by-step entry only when the bundle does not pin.
    let versions: Vec<_> = flow
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version_range.as_deref()))
        .collect();
    assert_eq!(
        versions,
        [
            ("@walkeros/collector", Some("^4.2.0")),
            ("@walkeros/server-source-express", None),
            ("@walkeros/server-destination-api", Some("4.2.1")),
        ]
    );
    assert_eq!(flow.overrides, [("zod".to_string(), "3.x".to_string())]);
    assert_eq!(flow.stores[0].id, "memory");

    // The sibling web flow loads too and reads the server flow's url.
    let web = load_valid("all-references.json", Some("web"));
    assert_eq!(web.platform, Platform::Web);
    let url = web.destinations[0]
        .config
        .as_ref()
        .unwrap()
        .get("settings")
        .unwrap()
        .get("url");
    assert_eq!(
        url,
        Some(&ConfigValue::String("https://collect.example.com".into()))
    );
}

#[test]
fn env_check_passes_when_the_environment_has_the_names() {
    let env = HashMap::from([("WAREHOUSE_TOKEN".to_string(), "t".to_string())]);
    let options = LoadOptions {
        flow_name: Some("warehouse"),
        env: Some(&env),
    };
    assert!(load_flow_config_with(&corpus("valid", "all-references.json"), &options).is_ok());
    let empty = HashMap::new();
    let options = LoadOptions {
        env: Some(&empty),
        ..options
    };
    let errors =
        load_flow_config_with(&corpus("valid", "all-references.json"), &options).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors
            .to_string()
            .contains("missing environment variable WAREHOUSE_TOKEN")
    );
}

#[test]
fn old_versions_are_converted_with_a_warning() {
    let v2 = load_valid("legacy-v2.json", None);
    assert_eq!(v2.source_version, 2);
    assert!(v2.warnings[0].starts_with("converted flow config version 2 to version 4"));
    assert_eq!(
        v2.sources[0].code,
        StepCode::Package {
            package: "@walkeros/server-source-express".into(),
            spec: "@walkeros/server-source-express".into(),
            import: Some("sourceExpress".into()),
        }
    );
    let settings = serde_json::to_value(v2.destinations[0].config.as_ref().unwrap()).unwrap();
    assert_eq!(
        settings["settings"],
        json!({"name": "edge", "values": ["name", "data"]})
    );

    let v3 = load_valid("legacy-v3.json", None);
    assert_eq!(v3.source_version, 3);
    let settings = serde_json::to_value(v3.destinations[0].config.as_ref().unwrap()).unwrap();
    assert_eq!(settings["settings"], json!({"view": {"type": "object"}}));
}

#[test]
fn a_single_flow_is_used_whatever_name_is_asked_for() {
    let flow = load_valid("collect-api.json", Some("production"));
    assert_eq!(flow.name, "default");
    assert!(flow.warnings[0].contains("flow \"production\" was requested"));
}

#[test]
fn unreadable_files_are_reported_with_their_path() {
    let errors = load_flow_config(&corpus("valid", "does-not-exist.json"), None).unwrap_err();
    assert_eq!(errors.errors()[0].kind.code(), "read");
    assert!(
        errors
            .to_string()
            .contains("does-not-exist.json: cannot read the flow config")
    );
}

/// Replacement values for the structural mutation run.
fn replacements() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(1e300),
        json!(""),
        json!("x-y"),
        json!([]),
        json!({}),
        json!([[], {}]),
        json!("$var.x"),
        json!("$var.currency.deep"),
        json!("pre $var.timeouts post"),
        json!("$env.X"),
        json!("$env.:"),
        json!("$secret."),
        json!("$secret.K $secret.L"),
        json!("$flow.warehouse"),
        json!("$flow.web.url.deeper"),
        json!("$contract.shop.events.*"),
        json!("$contract."),
        json!("$code:"),
        json!("$code:(e) => `${"),
        json!("$store."),
        json!("$def.x"),
        json!("@scope/pkg@"),
        json!("ü$var.ü"),
    ]
}

/// Replacements tried per node; they rotate through [`replacements`] from node to node, so
/// every kind of damage reaches every part of the file without trying all of them everywhere.
const REPLACEMENTS_PER_NODE: usize = 6;

/// Calls `visit` with a copy of `root` in which one node is replaced, for every node.
fn for_each_mutation(root: &Value, visit: &mut dyn FnMut(Value)) {
    fn pointers(value: &Value, prefix: &str, out: &mut Vec<String>) {
        out.push(prefix.to_string());
        let escape = |key: &str| key.replace('~', "~0").replace('/', "~1");
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    pointers(item, &format!("{prefix}/{}", escape(key)), out);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    pointers(item, &format!("{prefix}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    pointers(root, "", &mut all);
    let replacements = replacements();
    for (n, pointer) in all.iter().enumerate() {
        for k in 0..REPLACEMENTS_PER_NODE {
            let replacement = &replacements[(n * REPLACEMENTS_PER_NODE + k) % replacements.len()];
            let mut copy = root.clone();
            if let Some(slot) = copy.pointer_mut(pointer) {
                *slot = replacement.clone();
                visit(copy);
            }
        }
    }
}

#[test]
fn damaged_configs_never_panic() {
    let env = HashMap::from([("X".to_string(), "1".to_string())]);
    let mut runs = 0usize;
    for name in [
        "collect-api.json",
        "collect-noop.json",
        "all-references.json",
        "legacy-v2.json",
    ] {
        let path = corpus("valid", name);
        let text = std::fs::read_to_string(&path).unwrap();

        // Truncated at every third character boundary.
        for (cut, _) in text.char_indices().step_by(3) {
            let _ = parse_flow_config(&text[..cut], &path, &LoadOptions::default());
            runs += 1;
        }

        // Single characters changed into JSON punctuation and reference sigils.
        for (at, _) in text.char_indices().step_by(11) {
            for c in ['"', '{', '}', '[', ']', ',', ':', '$', '\\', '0'] {
                let mut damaged = text.clone();
                let end = at + damaged[at..].chars().next().map_or(0, char::len_utf8);
                damaged.replace_range(at..end, &c.to_string());
                let _ = parse_flow_config(&damaged, &path, &LoadOptions::default());
                runs += 1;
            }
        }

        // Every node replaced by values of other types and by broken references; the loads
        // alternate between the file's flows and between checking `$env` or not.
        let root: Value = serde_json::from_str(&text).unwrap();
        let flows: &[Option<&str>] = match name {
            "all-references.json" => &[Some("warehouse"), Some("web")],
            _ => &[None],
        };
        let mut n = 0usize;
        for_each_mutation(&root, &mut |mutated| {
            let options = LoadOptions {
                flow_name: flows[n % flows.len()],
                env: (n / flows.len() % 2 == 1).then_some(&env),
            };
            n += 1;
            if let Err(errors) = parse_flow_config(&mutated.to_string(), &path, &options) {
                assert!(!errors.is_empty());
            }
            runs += 1;
        });
    }
    assert!(runs > 5_000, "only {runs} damaged configs were tried");
}
