//! End-to-end scenarios: real `bot` processes, real brokers (the embedded one
//! through `bot up`, and mosquitto), the stock `mosquitto_pub`/`mosquitto_sub`
//! tools as clients. One test binary for the whole crate keeps link time down.
//!
//! Each scenario is written once, as a function of the broker kind, and
//! instantiated for both brokers by `both_brokers!`.

mod bridge;
mod classic;
mod cli;
mod dashboard;
mod metrics;
mod resilience;
mod schedules;
mod security;
mod soak;
mod structured;
mod tasks;
mod tidy;
mod webhooks;

use std::path::Path;

pub use bot_testkit::{Agent, Broker, BrokerKind, Sub, WAIT};

/// The `bot` binary under test.
pub fn bot() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bot"))
}

/// Instantiates `scenario(kind)` as `embedded::scenario` and `mosquitto::scenario` tests.
#[macro_export]
macro_rules! both_brokers {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $scenario() { super::$scenario($crate::BrokerKind::Embedded).unwrap() } )*
        }
        mod mosquitto {
            $( #[test] fn $scenario() { super::$scenario($crate::BrokerKind::Mosquitto).unwrap() } )*
        }
    };
}
