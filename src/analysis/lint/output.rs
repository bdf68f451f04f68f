//! The findings as text, JSON and SARIF 2.1.0.

use super::*;

pub(super) fn location(o: &Origin) -> String {
    o.to_string()
}

/// One block per finding, then a count.
pub fn text(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        s.push_str(&format!(
            "{}[{}]: {}: {}\n",
            f.severity,
            f.code,
            location(&f.origin),
            f.resource
        ));
        if let Some(r) = &f.rule {
            s.push_str(&format!("  rule: {r}\n"));
        }
        s.push_str(&format!("  {}\n", f.message));
        s.push_str(&format!("  fix: {}\n\n", f.fix));
    }
    let count = |sev: Severity| findings.iter().filter(|f| f.severity == sev).count();
    if findings.is_empty() {
        s.push_str("no findings\n");
    } else {
        s.push_str(&format!(
            "{} finding(s): {} error(s), {} warning(s), {} note(s)\n",
            findings.len(),
            count(Severity::Error),
            count(Severity::Warning),
            count(Severity::Note)
        ));
    }
    s
}

pub(super) fn opt_file(o: &Origin) -> serde_json::Value {
    if o.file.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::String(o.file.to_string())
    }
}

pub(super) fn opt_num(n: u32) -> serde_json::Value {
    if n == 0 {
        serde_json::Value::Null
    } else {
        n.into()
    }
}

/// A JSON array; each finding has the keys `code`, `severity`, `message`, `fix`,
/// `file`, `line`, `column` (`null` where unknown), `resource` and `rule` (`null` when
/// the finding is about an object, not one rule).
pub fn json(findings: &[Finding]) -> String {
    let v: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "code": f.code,
                "severity": f.severity.name(),
                "message": f.message,
                "fix": f.fix,
                "file": opt_file(&f.origin),
                "line": opt_num(f.origin.line),
                "column": opt_num(f.origin.column),
                "resource": f.resource,
                "rule": f.rule,
            })
        })
        .collect();
    serde_json::to_string_pretty(&v).expect("JSON of findings")
}

/// A path as a SARIF `uri` (a relative URI reference): `/` separators, and the
/// characters a URI cannot hold percent-encoded.
pub(super) fn uri(path: &str) -> String {
    let mut s = String::new();
    for b in path.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~:@!$&'()*+,;=".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// SARIF 2.1.0, one run, for code-scanning tools.
pub fn sarif(findings: &[Finding]) -> String {
    let rules: Vec<serde_json::Value> = RULES
        .iter()
        .map(|(id, sev, text)| {
            serde_json::json!({
                "id": id,
                "name": id,
                "shortDescription": { "text": text },
                "defaultConfiguration": { "level": sev.name() },
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            let mut loc = serde_json::json!({
                "logicalLocations": [{ "fullyQualifiedName": f.resource }],
            });
            if !f.origin.file.is_empty() {
                let mut phys = serde_json::json!({
                    "artifactLocation": { "uri": uri(&f.origin.file) },
                });
                if f.origin.line > 0 {
                    phys["region"] = serde_json::json!({
                        "startLine": f.origin.line,
                        "startColumn": f.origin.column.max(1),
                    });
                }
                loc["physicalLocation"] = phys;
            }
            serde_json::json!({
                "ruleId": f.code,
                "ruleIndex": RULES.iter().position(|r| r.0 == f.code).unwrap_or(0),
                "level": f.severity.name(),
                "message": { "text": format!("{} Fix: {}", f.message, f.fix) },
                "locations": [loc],
                "properties": { "fix": f.fix, "resource": f.resource, "rule": f.rule },
            })
        })
        .collect();
    let doc = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "vpcgate",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).expect("SARIF")
}
