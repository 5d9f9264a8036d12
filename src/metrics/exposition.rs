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

    /// Latency distributions, one per value of `label`, as an OpenMetrics
    /// histogram in seconds (`NAME_bucket`, `NAME_sum`, `NAME_count`).
    pub fn latency_histograms(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: &[Latency<'_>],
    ) {
        self.write(|encoder| {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for v in values {
                let sum_seconds = v.sum_ns as f64 / 1e9;
                metric
                    .encode_family(&[(label, v.label)])?
                    .encode_histogram::<NoLabelSet>(sum_seconds, v.count, &v.buckets, None)?;
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
        values: &[Latency<'_>],
    ) {
        self.write(|encoder| {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for v in values {
                for ((_, q_text), value_ns) in QUANTILES.iter().zip(v.quantiles_ns) {
                    let seconds = value_ns as f64 / 1e9;
                    metric
                        .encode_family(&[(label, v.label), ("quantile", q_text)])?
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
///
/// An HdrHistogram bucket counts toward the first bound at or above its
/// highest equivalent value, so a bound's range ends at the bound if an
/// HdrHistogram bucket ends there, else just before the bucket holding it.
/// Each range is summed by `count_between` over the part of it between the
/// histogram's min and max, so a scrape reads only the recorded span of
/// the counts array; walking all of it with `iter_recorded` (and `mean`
/// for the sum) was most of a scrape's CPU.
fn latency_buckets(h: &Histogram<u64>) -> [(f64, u64); LATENCY_BUCKET_NS.len() + 1] {
    let mut buckets = [(f64::INFINITY, 0u64); LATENCY_BUCKET_NS.len() + 1];
    let (min, max) = (h.min(), h.max());
    let mut low = 0;
    let mut counted = 0;
    for (bucket, bound_ns) in buckets.iter_mut().zip(LATENCY_BUCKET_NS) {
        bucket.0 = bound_ns as f64 / 1e9;
        let high = if h.highest_equivalent(bound_ns) == bound_ns {
            bound_ns
        } else {
            h.lowest_equivalent(bound_ns).saturating_sub(1)
        };
        if high < low {
            continue;
        }
        let (from, to) = (low.max(min), high.min(max));
        if !h.is_empty() && from <= to {
            bucket.1 = h.count_between(from, to);
            counted += bucket.1;
        }
        low = high + 1;
    }
    if let Some(inf) = buckets.last_mut() {
        inf.1 = h.len().saturating_sub(counted);
    }
    buckets
}

/// What a scrape writes of one latency distribution: read from a
/// nanosecond HdrHistogram by `Latency::of` while its owner holds it (no
/// copy of the histogram), then encoded.
pub struct Latency<'a> {
    pub label: &'a str,
    count: u64,
    /// The exact sum of the recorded values.
    sum_ns: u128,
    buckets: [(f64, u64); LATENCY_BUCKET_NS.len() + 1],
    /// At `QUANTILES`, exactly as `value_at_quantile` gives them.
    quantiles_ns: [u64; QUANTILES.len()],
}

impl<'a> Latency<'a> {
    pub fn of(label: &'a str, h: &Histogram<u64>, sum_ns: u128) -> Self {
        let mut quantiles_ns = [0; QUANTILES.len()];
        // One pass for all of them; a `value_at_quantile` each would walk
        // the counts once per quantile.
        for (slot, value_ns) in quantiles_ns
            .iter_mut()
            .zip(h.value_at_quantiles(QUANTILES.map(|(q, _)| q)))
        {
            *slot = value_ns;
        }
        Latency {
            label,
            count: h.len(),
            sum_ns,
            buckets: latency_buckets(h),
            quantiles_ns,
        }
    }
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
        let exact = QUANTILES.map(|(q, q_text)| (q_text, h.value_at_quantile(q) as f64 / 1e9));
        let text = encoded(move |e| {
            let values = [Latency::of(
                "decode",
                &h,
                2_000_000 + 20_000_000 + 120_000_000_000,
            )];
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
        assert!((sum - 120.022).abs() < 1e-9, "{sum}");
        let p50 =
            line("millrace_stage_latency_quantile_seconds{stage=\"decode\",quantile=\"0.5\"}");
        assert!((p50 - 0.02).abs() < 0.0001, "{p50}");
        for (q_text, seconds) in exact {
            let key = format!(
                "millrace_stage_latency_quantile_seconds{{stage=\"decode\",quantile=\"{q_text}\"}}"
            );
            assert_eq!(line(&key).to_bits(), seconds.to_bits(), "{key}");
        }
    }

    /// The buckets as the walk over every recorded value put them: the
    /// first bound at or above each value's highest equivalent.
    #[test]
    fn buckets_by_range_are_the_buckets_by_value() {
        let xorshift = |x: &mut u64| {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *x
        };
        // Log-spread over 0 .. ~2,000 s, with every bound's neighbours.
        let mut wide = crate::metrics::new_histogram();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let r = xorshift(&mut x);
            wide.record((r % 1_000) << (r >> 58 & 31)).unwrap();
        }
        for bound in LATENCY_BUCKET_NS {
            for v in [
                bound - 1,
                bound,
                bound + 1,
                wide.highest_equivalent(bound) + 1,
            ] {
                wide.record(v).unwrap();
            }
        }
        // Within one bound's range, across one, at a bound, and nothing.
        let mut narrow = crate::metrics::new_histogram();
        for _ in 0..1_000 {
            narrow.record(30_000 + xorshift(&mut x) % 15_000).unwrap();
        }
        let mut across = narrow.clone();
        across.record(70_000).unwrap();
        let mut at_bound = crate::metrics::new_histogram();
        at_bound.record_n(250_000, 7).unwrap();
        let empty = crate::metrics::new_histogram();
        for (name, h) in [
            ("wide", &wide),
            ("narrow", &narrow),
            ("across", &across),
            ("at a bound", &at_bound),
            ("empty", &empty),
        ] {
            let mut by_value = [0u64; LATENCY_BUCKET_NS.len() + 1];
            for v in h.iter_recorded() {
                let index = LATENCY_BUCKET_NS.partition_point(|&b| b < v.value_iterated_to());
                by_value[index] += v.count_at_value();
            }
            let by_range = latency_buckets(h).map(|(_, count)| count);
            assert_eq!(by_range, by_value, "{name}");
            assert_eq!(by_range.iter().sum::<u64>(), h.len(), "{name}");
        }
    }
}
