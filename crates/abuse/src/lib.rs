//! Sirr's abuse engine: decides from metadata alone (who registers, who writes to whom and when,
//! lookups, blocks, reports; never content, which the server cannot read) whether an account is
//! allowed, throttled, challenged or banned.
//!
//! The core does no IO: [`Engine::observe`] takes one [`Event`] and returns the decisions that
//! changed. `sirrd` feeds it live; `sirr-abuse replay` feeds it a log and prints the same
//! decisions. Modules:
//! - [`event`]: the fixed JSON-lines schema and its decoder (typed errors, never panics);
//! - [`features`]: per-account causal state and the feature vector;
//! - [`rules`]: hard rules for the obvious cases;
//! - [`model`]: the logistic regression shipped as `model.json`;
//! - [`engine`]: the state machine, thresholds and decisions;
//! - [`sim`]: the traffic simulator, [`eval`]: the figures (both pure, for the CLI and tests).

pub mod engine;
pub mod eval;
pub mod event;
pub mod features;
mod fxhash;
pub mod model;
pub mod rules;
pub mod sim;

pub use engine::{Action, ConfigError, Decision, Engine, EngineConfig};
pub use event::{Event, EventError, EventReader, parse_line};
pub use features::{FEATURE_NAMES, N_FEATURES};
pub use model::{Model, ModelError};
pub use rules::RulesConfig;
