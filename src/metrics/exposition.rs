//! The exposition: OpenMetrics text, encoded by `prometheus-client`.
//!
//! The counters live where they are counted (the readers', the writer's and
//! the sinks' atomics); nothing is registered twice. A `render` function
//! writes their values through [`Exposition`] on every scrape, as a
//! prometheus-client `Collector`, and the crate does the encoding (names,
//! label escaping, `_total` on counters, histogram buckets, `# EOF`).
//!
//! Latency: prometheus-client has no summary type, so each stage's
//! HdrHistogram is exposed twice: as an OpenMetrics histogram on fixed
//! buckets (`millrace_stage_latency_seconds_bucket`, `_sum`, `_count`:
//! rates and `histogram_quantile` over a window, what a dashboard wants) and
//! as the exact quantiles since start (or since SIGUSR1) in a gauge family
//! (`millrace_stage_latency_quantile_seconds{stage,quantile}`: what a
//! benchmark reports).

use std::fmt;

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`Exporter::encode`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency buckets, in nanoseconds: 10 us to 60 s in
/// 1-2.5-5 steps, wide enough for a decode (microseconds) and a stalled
/// acknowledgement (seconds); everything above lands in `+Inf`.
const LATENCY_BUCKET_NS: [u64; 21] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
];

/// The quantiles of the exact gauge family, as label values.
const QUANTILES: [(f64, &str); 4] = [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (0.999, "0.999")];

/// Writes metric families during one scrape. The first encoding error is
/// kept and returned to the encoder; later writes are skipped.
pub struct Exposition<'a> {
    encoder: DescriptorEncoder<'a>,
    result: fmt::Result,
}

impl Exposition<'_> {
    /// A counter. `name` ends in `_total` (the OpenMetrics sample name): it
    /// is written here as dashboards and tests query it.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        let family = counter_family_name(name);
        self.write(|encoder| {
            let mut metric = encoder.encode_descriptor(family, help, None, MetricType::Counter)?;
            metric.encode_counter::<NoLabelSet, _, u64>(&value, None)
        });
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: impl EncodeGaugeValue) {
        self.write(|encoder| {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            metric.encode_gauge(&value)
        });
    }

    /// One counter per value of `label` (e.g. per sink).
    pub fn counter_family(&mut self, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
        let family = counter_family_name(name);
        self.write(|encoder| {
            let mut metric = encoder.encode_descriptor(family, help, None, MetricType::Counter)?;
            for (label_value, value) in values {
                metric
                    .encode_family(&[(label, *label_value)])?
                    .encode_counter::<NoLabelSet, _, u64>(value, None)?;
            }
            Ok(())
        });
    }

    /// One gauge per value of `label` (e.g. per sink).
    pub fn gauge_family(&mut self, name: &str, help: &str, label: &str, values: &[(&str, f64)]) {
        self.write(|encoder| {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (label_value, value) in values {
                metric
                    .encode_family(&[(label, *label_value)])?
                    .encode_gauge(value)?;
            }
            Ok(())
        });
    }

    /// Nanosecond HdrHistograms, one per value of `label`, as an OpenMetrics
    /// histogram in seconds (`NAME_bucket`, `NAME_sum`, `NAME_count`).
    pub fn latency_histograms(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: &[(&str, &Histogram<u64>)],
    ) {
        self.write(|encoder| {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (label_value, h) in values {
                let buckets = latency_buckets(h);
                metric
                    .encode_family(&[(label, *label_value)])?
                    .encode_histogram::<NoLabelSet>(sum_seconds(h), h.len(), &buckets, None)?;
            }
            Ok(())
        });
    }

    /// The exact p50/p90/p99/p99.9 of nanosecond HdrHistograms, in seconds,
    /// one gauge per value of `label` and quantile.
    pub fn latency_quantiles(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: &[(&str, &Histogram<u64>)],
    ) {
        self.write(|encoder| {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (label_value, h) in values {
                for (q, q_text) in QUANTILES {
                    let seconds = h.value_at_quantile(q) as f64 / 1e9;
                    metric
                        .encode_family(&[(label, *label_value), ("quantile", q_text)])?
                        .encode_gauge(&seconds)?;
                }
            }
            Ok(())
        });
    }

    fn write(&mut self, f: impl FnOnce(&mut DescriptorEncoder<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = f(&mut self.encoder);
        }
    }
}

/// prometheus-client adds `_total` to a counter's family name itself.
fn counter_family_name(name: &str) -> &str {
    debug_assert!(
        name.ends_with("_total"),
        "counter {name} must end in _total"
    );
    name.strip_suffix("_total").unwrap_or(name)
}

/// Per-bucket counts (the encoder makes them cumulative), `+Inf` last.
fn latency_buckets(h: &Histogram<u64>) -> [(f64, u64); LATENCY_BUCKET_NS.len() + 1] {
    let mut buckets = [(f64::INFINITY, 0u64); LATENCY_BUCKET_NS.len() + 1];
    for (bucket, bound_ns) in buckets.iter_mut().zip(LATENCY_BUCKET_NS) {
        bucket.0 = bound_ns as f64 / 1e9;
    }
    for v in h.iter_recorded() {
        let value_ns = v.value_iterated_to();
        let index = LATENCY_BUCKET_NS.partition_point(|&bound| bound < value_ns);
        buckets[index].1 += v.count_at_value();
    }
    buckets
}

fn sum_seconds(h: &Histogram<u64>) -> f64 {
    h.mean() * h.len() as f64 / 1e9
}

/// A render function as a prometheus-client registry.
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    pub fn new<F>(render: F) -> Exporter
    where
        F: Fn(&mut Exposition<'_>) + Send + Sync + 'static,
    {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Rendered(render)));
        Exporter { registry }
    }

    /// The exposition now, in OpenMetrics text (ends with `# EOF`).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

struct Rendered<F>(F);

impl<F> fmt::Debug for Rendered<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rendered")
    }
}

impl<F> Collector for Rendered<F>
where
    F: Fn(&mut Exposition<'_>) + Send + Sync + 'static,
{
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        let mut exposition = Exposition {
            encoder,
            result: Ok(()),
        };
        (self.0)(&mut exposition);
        exposition.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(render: impl Fn(&mut Exposition<'_>) + Send + Sync + 'static) -> String {
        Exporter::new(render).encode().unwrap()
    }

    #[test]
    fn counters_keep_their_names_and_gauges_their_labels() {
        let text = encoded(|e| {
            e.counter("millrace_frames_total", "Frames decoded.", 42);
            e.gauge_family("millrace_sink_lag_samples", "Lag.", "sink", &[("tp", 3.0)]);
            e.counter_family(
                "millrace_sink_acked_samples_total",
                "Acked.",
                "sink",
                &[("a\"b", 1)],
            );
        });
        assert!(text.contains("# TYPE millrace_frames counter\n"), "{text}");
        assert!(text.contains("\nmillrace_frames_total 42\n"), "{text}");
        assert!(
            text.contains("\nmillrace_sink_lag_samples{sink=\"tp\"} 3.0\n"),
            "{text}"
        );
        assert!(
            text.contains("millrace_sink_acked_samples_total{sink=\"a\\\"b\"} 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_histogram_has_cumulative_buckets_sum_count_and_exact_quantiles() {
        let mut h = crate::metrics::new_histogram();
        h.record(2_000_000).unwrap(); // 2 ms
        h.record(20_000_000).unwrap(); // 20 ms
        h.record(120_000_000_000).unwrap(); // 2 min: +Inf
        let text = encoded(move |e| {
            let values = [("decode", &h)];
            e.latency_histograms(
                "millrace_stage_latency_seconds",
                "Latency.",
                "stage",
                &values,
            );
            e.latency_quantiles(
                "millrace_stage_latency_quantile_seconds",
                "Q.",
                "stage",
                &values,
            );
        });
        let line = |key: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("{key} in {text}"))
        };
        let bucket = |le: &str| {
            line(&format!(
                "millrace_stage_latency_seconds_bucket{{le=\"{le}\",stage=\"decode\"}}"
            ))
        };
        assert_eq!(bucket("0.001"), 0.0);
        assert_eq!(bucket("0.0025"), 1.0);
        assert_eq!(bucket("0.025"), 2.0);
        assert_eq!(bucket("60.0"), 2.0);
        assert_eq!(bucket("+Inf"), 3.0);
        assert_eq!(
            line("millrace_stage_latency_seconds_count{stage=\"decode\"}"),
            3.0
        );
        let sum = line("millrace_stage_latency_seconds_sum{stage=\"decode\"}");
        assert!((sum - 120.022).abs() < 0.2, "{sum}");
        let p50 =
            line("millrace_stage_latency_quantile_seconds{stage=\"decode\",quantile=\"0.5\"}");
        assert!((p50 - 0.02).abs() < 0.0001, "{p50}");
    }
}
