//! What the benches share: the npm configuration they bundle with and a sink on 127.0.0.1.

#![allow(dead_code)]

use flowhost::build::npm::NpmConfig;

/// This machine's npm configuration, with the registry npm would use when none is configured.
pub fn npm_config() -> NpmConfig {
    NpmConfig::from_env(&std::env::current_dir().unwrap())
        .and_then(NpmConfig::or_npm_cli_registry)
        .expect("an npm registry: set NPM_CONFIG_REGISTRY or install npm")
}

/// An HTTP server on 127.0.0.1 that answers `{}` to every POST to `/collect`; returns its base
/// URL (`http://127.0.0.1:<port>`). It runs until the runtime stops.
pub async fn start_sink() -> String {
    let app = axum::Router::new().route("/collect", axum::routing::post(|| async { "{}" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}
