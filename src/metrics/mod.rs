//! Observability: latency histograms per stage, counters, and an OpenMetrics
//! (Prometheus) endpoint bound to 127.0.0.1 by default.
//!
//! Owns no pipeline state: the pipeline hands it a `render` closure that
//! writes the current exposition. Must never block a data-path thread.

mod endpoint;
mod exposition;
mod histograms;

pub use endpoint::MetricsEndpoint;
pub use exposition::{Exporter, Exposition, Latency, CONTENT_TYPE};
pub use histograms::{hgrm_text, new_histogram, summary_ms, Stage, StageHistograms, StageRecorder};
