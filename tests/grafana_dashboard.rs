//! `dist/grafana/millrace.json` queries only what millrace exports: a real
//! `millrace run` (farm and tickerplant stand-in on 127.0.0.1) is scraped,
//! every PromQL expression of the dashboard is parsed far enough to find
//! its metric selectors, label matchers, grouping labels and legend labels,
//! and each must exist in the scrape. A renamed metric or label fails here,
//! not in front of an operator looking at an empty panel.

mod common;
mod fault_proc_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{metric_in, try_scrape, wait_until};
use fault_proc_support::{tickerplant, Delivered, Plant, PlantSpec, Run};

const DASHBOARD: &str = include_str!("../dist/grafana/millrace.json");
/// Labels Prometheus attaches to every series of a target at scrape time.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

#[test]
fn every_panel_queries_metrics_and_labels_the_gateway_exports() {
    let delivered = Delivered::shared(4, 10);
    let tp = tickerplant("127.0.0.1:0", &delivered, None);
    let spec = PlantSpec {
        devices: 4,
        tags: 10,
        metrics: true,
        ..PlantSpec::default()
    };
    let plant = Plant::start(&tp.local_addr().to_string(), spec);
    let run = Run::spawn(&plant.config, &plant.dir.path().join("run.log"), &[]);
    let addr = run.metrics_addr();
    let mut text = String::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            text = try_scrape(&addr).unwrap_or_default();
            metric_in(&text, "millrace_sink_acked_samples_total").is_some_and(|n| n > 0.0)
        }),
        "the run never acknowledged samples: {}",
        run.log_text()
    );
    let exported = Exported::parse(&text);

    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    let queries = queries(&dashboard);
    assert!(queries.len() >= 20, "only {} queries found", queries.len());
    for query in &queries {
        check(query, &exported);
    }
    let (status, log) = run.stop();
    assert!(status.success(), "millrace run: {status}\n{log}");
}

/// A dashboard query: where it is, its PromQL, its legend.
struct Query {
    place: String,
    expr: String,
    legend: String,
}

fn queries(dashboard: &serde_json::Value) -> Vec<Query> {
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().expect("every panel has a title");
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} twice");
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} queries nothing");
        for target in targets {
            out.push(Query {
                place: format!("panel {title:?} target {}", target["refId"]),
                expr: target["expr"].as_str().expect("expr").to_string(),
                legend: target["legendFormat"].as_str().unwrap_or("").to_string(),
            });
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        let Some(query) = variable["query"]["query"].as_str() else {
            continue;
        };
        // `label_values(METRIC, LABEL)`: the metric must carry the label.
        let (metric, label) = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')')?.split_once(','))
            .unwrap_or_else(|| panic!("variable query {query:?} is not label_values(M, L)"));
        out.push(Query {
            place: format!("variable {}", variable["name"]),
            expr: metric.trim().to_string(),
            legend: format!("{{{{{}}}}}", label.trim()),
        });
    }
    out
}

fn check(query: &Query, exported: &Exported) {
    let parsed = parse_promql(&query.expr);
    let place = &query.place;
    assert!(
        !parsed.selectors.is_empty(),
        "{place}: no metric in {}",
        query.expr
    );
    let mut labels_in_reach: BTreeSet<&str> = TARGET_LABELS.into();
    for selector in &parsed.selectors {
        let Some(series) = exported.series.get(&selector.metric) else {
            panic!("{place}: {} is not exported", selector.metric);
        };
        for labels in series {
            labels_in_reach.extend(labels.keys().map(String::as_str));
        }
        for (label, op, value) in &selector.matchers {
            if TARGET_LABELS.contains(&label.as_str()) {
                continue;
            }
            assert!(
                series.iter().any(|l| l.contains_key(label)),
                "{place}: {} has no label {label}",
                selector.metric
            );
            if op == "=" && !value.contains('$') {
                assert!(
                    series.iter().any(|l| l.get(label) == Some(value)),
                    "{place}: no series {}{{{label}=\"{value}\"}} is exported",
                    selector.metric
                );
            }
        }
    }
    for label in parsed.grouping.iter().chain(&legend_labels(&query.legend)) {
        assert!(
            labels_in_reach.contains(label.as_str()),
            "{place}: label {label} is on none of the metrics it queries"
        );
    }
}

/// `{{name}}` placeholders of a legend.
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| Some(part.split_once("}}")?.0.trim().to_string()))
        .collect()
}

/// Every series of the scrape: sample name to its label sets.
struct Exported {
    series: BTreeMap<String, Vec<BTreeMap<String, String>>>,
}

impl Exported {
    fn parse(text: &str) -> Exported {
        let body = text.split_once("\r\n\r\n").map_or(text, |(_, body)| body);
        let mut series: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
        for line in body
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let name_end = line.find(['{', ' ']).expect("a sample line has a value");
            let mut labels = BTreeMap::new();
            if line[name_end..].starts_with('{') {
                let block = &line[name_end + 1..line.rfind('}').expect("closing brace")];
                for (key, _, value) in parse_matchers(block) {
                    labels.insert(key, value);
                }
            }
            series
                .entry(line[..name_end].to_string())
                .or_default()
                .push(labels);
        }
        assert!(!series.is_empty(), "an empty scrape: {text}");
        Exported { series }
    }
}

/// What a PromQL expression refers to.
#[derive(Debug, Default)]
struct Parsed {
    selectors: Vec<Selector>,
    /// Labels of `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`,
    /// `group_left (...)`, `group_right (...)`.
    grouping: Vec<String>,
}

#[derive(Debug)]
struct Selector {
    metric: String,
    /// (label, operator, value).
    matchers: Vec<(String, String, String)>,
}

const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Words that are never metric names (aggregations may stand before `by`).
const KEYWORDS: [&str; 18] = [
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "topk",
    "bottomk",
    "quantile",
    "stddev",
    "stdvar",
    "group",
    "count_values",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
];

/// Enough of PromQL for dashboards: identifiers, `{...}` matchers, `[...]`
/// ranges, strings, numbers, parentheses and operators.
fn parse_promql(expr: &str) -> Parsed {
    let chars: Vec<char> = expr.chars().collect();
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i = skip_string(&chars, i);
        } else if c == '[' {
            i += chars[i..]
                .iter()
                .position(|&c| c == ']')
                .expect("closing ]")
                + 1;
        } else if c == '{' {
            let end = i + chars[i..]
                .iter()
                .position(|&c| c == '}')
                .expect("closing }");
            let block: String = chars[i + 1..end].iter().collect();
            let selector = parsed
                .selectors
                .last_mut()
                .expect("matchers follow a metric name");
            selector.matchers = parse_matchers(&block);
            i = end + 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let opens = chars.get(next) == Some(&'(');
            if GROUPING.contains(&word.as_str()) && opens {
                let end = next + chars[next..].iter().position(|&c| c == ')').expect(")");
                let list: String = chars[next + 1..end].iter().collect();
                parsed.grouping.extend(
                    list.split(',')
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from),
                );
                i = end + 1;
            } else if !opens && !KEYWORDS.contains(&word.as_str()) {
                parsed.selectors.push(Selector {
                    metric: word,
                    matchers: Vec::new(),
                });
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    parsed
}

/// The index after the string literal that starts at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

/// `a="x", b=~"y.*"` (a selector's or a sample's labels).
fn parse_matchers(block: &str) -> Vec<(String, String, String)> {
    let chars: Vec<char> = block.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let label: String = chars[start..i].iter().collect();
        let op_start = i;
        while i < chars.len() && "=!~".contains(chars[i]) {
            i += 1;
        }
        let op: String = chars[op_start..i].iter().collect();
        assert!(
            !label.is_empty() && ["=", "!=", "=~", "!~"].contains(&op.as_str()),
            "cannot read the matchers {block:?}"
        );
        let end = skip_string(&chars, i);
        let mut value = String::new();
        let mut escaped = false;
        for &c in &chars[i + 1..end - 1] {
            if escaped || c != '\\' {
                value.push(c);
                escaped = false;
            } else {
                escaped = true;
            }
        }
        out.push((label, op, value));
        i = end;
    }
    out
}

#[test]
fn the_parser_finds_selectors_matchers_and_grouping() {
    let parsed = parse_promql(
        "histogram_quantile(0.99, sum by (le, stage) (rate(\
         millrace_stage_latency_seconds_bucket{stage=\"end_to_end\",instance=~\"$instance\"}\
         [$__rate_interval]))) / on (instance) millrace_devices_connected",
    );
    let metrics: Vec<&str> = parsed.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(
        metrics,
        [
            "millrace_stage_latency_seconds_bucket",
            "millrace_devices_connected"
        ]
    );
    assert_eq!(
        parsed.selectors[0].matchers,
        [
            ("stage".into(), "=".into(), "end_to_end".into()),
            ("instance".into(), "=~".into(), "$instance".into())
        ]
    );
    assert_eq!(parsed.grouping, ["le", "stage", "instance"]);
    assert_eq!(
        legend_labels("p99 {{instance}} {{ sink }}"),
        ["instance", "sink"]
    );
}
