//! Prometheus text exposition format (version 0.0.4), written into one
//! reused `String`.

use std::fmt::Write;

use hdrhistogram::Histogram;

#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn clear(&mut self) {
        self.text.clear();
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "counter");
        let _ = writeln!(self.text, "{name} {value}");
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, help, "gauge");
        let _ = writeln!(self.text, "{name} {value}");
    }

    /// One metric with a label, several values (e.g. per sink, per stage).
    pub fn labelled(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        label: &str,
        values: &[(&str, f64)],
    ) {
        self.header(name, help, kind);
        for (label_value, value) in values {
            let _ = writeln!(
                self.text,
                "{name}{{{label}=\"{}\"}} {value}",
                escape(label_value)
            );
        }
    }

    /// A latency histogram as a Prometheus summary in seconds.
    pub fn summary(&mut self, name: &str, help: &str, label: (&str, &str), h: &Histogram<u64>) {
        let (key, value) = label;
        let value = escape(value);
        for q in [0.5, 0.9, 0.99, 0.999] {
            let v = h.value_at_quantile(q) as f64 / 1e9;
            let _ = writeln!(
                self.text,
                "{name}{{{key}=\"{value}\",quantile=\"{q}\"}} {v}"
            );
        }
        let sum = h.mean() * h.len() as f64 / 1e9;
        let _ = writeln!(self.text, "{name}_sum{{{key}=\"{value}\"}} {sum}");
        let _ = writeln!(self.text, "{name}_count{{{key}=\"{value}\"}} {}", h.len());
        let _ = help;
    }

    pub fn summary_header(&mut self, name: &str, help: &str) {
        self.header(name, help, "summary");
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_summaries() {
        let mut e = Exposition::default();
        e.counter("millrace_frames_total", "Frames decoded.", 42);
        let mut h = crate::metrics::new_histogram();
        h.record(2_000_000).unwrap();
        e.summary_header("millrace_stage_seconds", "Latency per stage.");
        e.summary("millrace_stage_seconds", "", ("stage", "decode"), &h);
        let text = e.as_str();
        assert!(text.contains("# TYPE millrace_frames_total counter\nmillrace_frames_total 42\n"));
        assert!(text.contains("millrace_stage_seconds{stage=\"decode\",quantile=\"0.99\"} 0.002"));
        assert!(text.contains("millrace_stage_seconds_count{stage=\"decode\"} 1"));
    }
}
