//! Integration tests: the real proxy on 127.0.0.1:0, real TLS with generated certificates, real
//! HTTP clients and upstream servers. One binary, one module per area.
//!
//! Test helpers outside `#[test]` functions may unwrap too: a failed set-up is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod upstream;

mod access_log;
mod admin;
mod app_service;
mod assertion;
mod audit;
mod bearer;
mod cli;
mod connections;
mod cors;
mod credentials;
mod dashboard;
#[cfg(feature = "demo")]
mod demo;
mod errors;
mod exposition;
mod forward_auth;
mod gate;
mod header_equivalence;
mod headers;
mod hsts;
mod https_upstreams;
mod identity;
mod lifetimes;
mod login;
mod migration;
mod observability;
mod optional_claims;
mod pool;
mod properties;
mod protocols;
mod redis_entra;
mod redis_reshard;
mod redis_tls;
mod redis_topologies;
mod reload;
mod replica_ack;
mod replicas;
mod routing;
mod server_limits;
mod session_rules;
mod session_size;
mod sessions;
mod shutdown;
mod sign_in_abuse;
mod sign_in_options;
mod signin_host;
mod step_up;
mod store;
mod store_readiness;
mod streaming;
mod tls_resumption;
mod tokens;
mod traces;
mod websocket;
