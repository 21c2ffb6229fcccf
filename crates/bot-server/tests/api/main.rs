//! The HTTP API of `bot-server`, driven through its router without a socket
//! (`tower::ServiceExt::oneshot`), against a real server: a mosquitto broker
//! on a free port (`bot_testkit::Broker`), a SQLite database in a temporary
//! directory, and fake agents made of retained status messages (no agent
//! process: they never answer, or answer through a hand-made reply). Every
//! wait polls with a deadline; nothing sleeps a fixed time.
//!
//! - `auth`: tokens, the public routes, unknown routes;
//! - `tasks`: submit validation, show, list, cancel, retry;
//! - `agents`: the registry with filters;
//! - `bus`: `/api/publish` and `/api/call`;
//! - `openapi`: the document against the official OpenAPI 3.1 schema, and
//!   against the routes the router serves;
//! - `limits`: the HTTP listener's timeouts and connection cap, over sockets.

mod agents;
mod auth;
mod bus;
mod common;
mod limits;
mod monitoring;
mod openapi;
mod tasks;
mod webhooks;
