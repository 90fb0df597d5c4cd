//! `strata explain`: the plain-text audit trail for one person, from the
//! reference evaluator's [`Outcome`]: every feature with the events behind
//! it, every rule fired / not fired / unknown with its points, the score,
//! override, exclusion, tier and reasons.
//!
//! The person summary shows nothing more identifying than the id the user
//! asked for: practice, age and sex, never the date of birth or LSOA.

use std::fmt::Write;

use chrono::NaiveDate;

use super::eval::{Forced, Outcome, PersonRecord, RuleResult};
use super::expr::Value;
use super::model::Pack;
use super::semantics::age_on;

/// Renders the audit trail. `outcome` must come from
/// `evaluate(pack, person, as_of)`.
pub fn explain(pack: &Pack, person: &PersonRecord, as_of: NaiveDate, outcome: &Outcome) -> String {
    explain_with(pack, person, as_of, outcome, &[])
}

/// [`explain`] with lines the caller knows about the person (what the
/// dataset, not the pack, says: where their deprivation decile came from)
/// shown after the person line.
pub fn explain_with(
    pack: &Pack,
    person: &PersonRecord,
    as_of: NaiveDate,
    outcome: &Outcome,
    person_lines: &[String],
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_explain(&mut out, pack, person, as_of, outcome, person_lines);
    out
}

fn write_explain(
    out: &mut String,
    pack: &Pack,
    person: &PersonRecord,
    as_of: NaiveDate,
    o: &Outcome,
    person_lines: &[String],
) -> std::fmt::Result {
    let hash: String = pack.content_hash.chars().take(12).collect();
    writeln!(
        out,
        "patient {} as of {}",
        person.patient_id,
        as_of.format("%Y-%m-%d")
    )?;
    writeln!(
        out,
        "pack    {} {} ({hash})",
        pack.meta.id, pack.meta.version
    )?;
    for u in &pack.uses {
        let hash: String = u.content_hash.chars().take(12).collect();
        writeln!(out, "uses    {} = {} {} ({hash})", u.alias, u.id, u.version)?;
    }
    let column = |name: &str| person.columns.get(name).cloned().unwrap_or(Value::Null);
    let age = match column(crate::contract::DATE_OF_BIRTH) {
        Value::Date(dob) => age_on(dob, as_of).map_or("unknown".to_string(), |a| a.to_string()),
        _ => "unknown".to_string(),
    };
    writeln!(
        out,
        "person  practice {}, age {age}, sex {}",
        column("practice_code"),
        column("sex")
    )?;
    for line in person_lines {
        writeln!(out, "{line}")?;
    }
    writeln!(out)?;

    if !o.in_population {
        let why = if o.population_unknown {
            "unknown because of missing data"
        } else {
            "the population condition is false"
        };
        writeln!(out, "population  no ({why}); nothing else is evaluated")?;
        return Ok(());
    }
    writeln!(out, "population  yes")?;
    writeln!(out)?;

    writeln!(out, "features")?;
    for (i, f) in pack.features.iter().enumerate() {
        let value = o.features.get(i).cloned().unwrap_or(Value::Null);
        writeln!(out, "  {} = {value}", f.name)?;
        for e in o.evidence.get(i).map(Vec::as_slice).unwrap_or(&[]) {
            let mut line = format!("      {}  {}", e.date.format("%Y-%m-%d"), e.codelist);
            if !e.code.is_empty() {
                write!(line, "  {}", e.code)?;
            }
            if let Some(term) = &e.term {
                write!(line, "  {term}")?;
            }
            if let Some(v) = e.value {
                write!(line, "  value {v}")?;
            }
            writeln!(out, "{line}")?;
        }
    }
    writeln!(out)?;

    writeln!(out, "rules")?;
    let id_width = pack.rules.iter().map(|r| r.id.len()).max().unwrap_or(0);
    let points: Vec<String> = pack
        .rules
        .iter()
        .map(|r| signed(&r.points.normalize().to_string()))
        .collect();
    let points_width = points.iter().map(String::len).max().unwrap_or(0);
    for ((i, rule), rule_points) in pack.rules.iter().enumerate().zip(&points) {
        let (status, note) = match o.rules.get(i) {
            Some(RuleResult::Fired) => ("fired    ", rule.reason.render(&o.features)),
            Some(RuleResult::Unknown) => {
                ("unknown  ", "unknown because of missing data".to_string())
            }
            _ => ("not fired", String::new()),
        };
        let line = format!(
            "  {status}  {:>pw$}  {:<iw$}  {note}",
            rule_points,
            rule.id,
            pw = points_width,
            iw = id_width
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    writeln!(out, "score       {}", o.score.normalize())?;
    writeln!(out)?;

    // Indices come from `evaluate` on the same pack; a mismatched outcome
    // shows `?` rather than panicking.
    let codelist = |i: usize| pack.codelists.get(i).map_or("?", |c| c.name.as_str());
    let tier_id = |i: usize| pack.tiers.get(i).map_or("?", |t| t.id.as_str());
    match o
        .forced
        .and_then(|(i, dir)| Some((pack.overrides.get(i)?, dir)))
    {
        Some((ov, Forced::In)) => writeln!(
            out,
            "override    {}: forced into tier {} (latest code is {}, not {})",
            ov.id,
            tier_id(ov.tier),
            codelist(ov.include),
            codelist(ov.exclude)
        )?,
        Some((ov, Forced::Out)) => writeln!(
            out,
            "override    {}: forced off the list (latest code is {})",
            ov.id,
            codelist(ov.exclude)
        )?,
        None => writeln!(out, "override    none")?,
    }
    match o.excluded_by.and_then(|i| pack.exclusions.get(i)) {
        Some(ex) => writeln!(out, "exclusion   {}: {}", ex.id, ex.reason)?,
        None => writeln!(out, "exclusion   none")?,
    }
    match o.tier.and_then(|i| pack.tiers.get(i)) {
        Some(t) => writeln!(out, "tier        {} ({})", t.id, t.label)?,
        None => writeln!(out, "tier        none")?,
    }
    writeln!(out, "listed      {}", if o.listed() { "yes" } else { "no" })?;
    if o.reasons.is_empty() {
        writeln!(out, "reasons     none")?;
    } else {
        writeln!(out, "reasons     {}", o.reasons.join("; "))?;
    }
    Ok(())
}

fn signed(points: &str) -> String {
    if points.starts_with('-') {
        points.to_string()
    } else {
        format!("+{points}")
    }
}
