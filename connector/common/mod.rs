//! What every area uses and that depends on none of them: the vocabulary of settings
//! ([`setting`]) and secrets ([`secret`]), the clock ([`clock`]), metric names
//! ([`metrics`]), and logs and traces ([`telemetry`]).

pub mod clock;
pub(crate) mod metrics;
pub mod secret;
pub mod setting;
pub mod telemetry;
