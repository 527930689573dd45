//! `tollgate plans put|list|show`: the plans the authorizer and quota-sync enforce.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::Client;
use clap::Subcommand;
use tollgate_core::Plan;
use tollgate_store::{KeysStore, TableNames};

#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// Create or replace plans from a YAML or JSON file: one plan, or a list.
    ///
    /// A plan: `name`, `limits` (each `meter`, `window` (minute, hour, day,
    /// month), `limit`), `overage` (hard: deny when reached (default); soft:
    /// allow and count), `failure` (closed: deny when the store cannot be
    /// read (default); open: allow).
    Put {
        /// The file (`.json` is read as JSON, anything else as YAML).
        file: PathBuf,
    },
    /// List every plan.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one plan.
    Show {
        name: String,
        /// Print JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(client: &Client, names: &TableNames, command: PlansCommand) -> Result<()> {
    let store = KeysStore::new(client.clone(), names.keys.clone());
    match command {
        PlansCommand::Put { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let plans = parse_plans(&text, &file)?;
            for line in put_plans(&store, &plans).await? {
                println!("{line}");
            }
        }
        PlansCommand::List { json } => {
            let plans = list_plans(&store).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plans)?);
            } else {
                print!("{}", render_list(&plans));
            }
        }
        PlansCommand::Show { name, json } => {
            let plan = find_plan(&store, &name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", serde_yaml_ng::to_string(&plan)?);
            }
        }
    }
    Ok(())
}

/// Reads a plan file ([`tollgate_app::plan_file::parse_plans`]).
pub fn parse_plans(text: &str, path: &Path) -> Result<Vec<Plan>> {
    Ok(tollgate_app::plan_file::parse_plans(
        text,
        &path.display().to_string(),
    )?)
}

/// Stores the plans; one line per plan saying what was stored.
pub async fn put_plans(store: &KeysStore, plans: &[Plan]) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for plan in plans {
        store
            .put_plan(plan)
            .await
            .with_context(|| format!("storing plan {}", plan.name))?;
        let mut line = format!("stored plan {}: {}", plan.name, summary(plan));
        if plan.limits.is_empty() {
            line.push_str(" (no limits: never blocked)");
        }
        lines.push(line);
    }
    Ok(lines)
}

/// Every plan, by name.
pub async fn list_plans(store: &KeysStore) -> Result<Vec<Plan>> {
    let mut plans = store.list_plans().await.context("listing plans")?;
    plans.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(plans)
}

/// The plan called `name`, or an error that says which plans exist.
pub async fn find_plan(store: &KeysStore, name: &str) -> Result<Plan> {
    let plans = list_plans(store).await?;
    let known: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
    plans.into_iter().find(|p| p.name == name).with_context(|| {
        if known.is_empty() {
            format!("no plan {name:?}: no plans are defined (tollgate plans put <file>)")
        } else {
            format!("no plan {name:?}; plans: {}", known.join(", "))
        }
    })
}

fn summary(plan: &Plan) -> String {
    let limits: Vec<String> = plan
        .limits
        .iter()
        .map(|l| format!("{} {}/{}", l.meter, l.limit, l.window))
        .collect();
    format!(
        "{}, overage {}, failure {}",
        if limits.is_empty() {
            "no limits".to_owned()
        } else {
            limits.join(", ")
        },
        serde_plain(&plan.overage),
        serde_plain(&plan.failure),
    )
}

fn serde_plain<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A table of plans.
pub fn render_list(plans: &[Plan]) -> String {
    if plans.is_empty() {
        return "no plans (tollgate plans put <file>)\n".to_owned();
    }
    let width = plans.iter().map(|p| p.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:<width$}  {:<7}  {:<7}  LIMITS\n",
        "NAME", "OVERAGE", "FAILURE"
    );
    for p in plans {
        let limits: Vec<String> = p
            .limits
            .iter()
            .map(|l| format!("{} {}/{}", l.meter, l.limit, l.window))
            .collect();
        out.push_str(&format!(
            "{:<width$}  {:<7}  {:<7}  {}\n",
            p.name,
            serde_plain(&p.overage),
            serde_plain(&p.failure),
            if limits.is_empty() {
                "-".to_owned()
            } else {
                limits.join(", ")
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tollgate_core::{FailurePolicy, OveragePolicy, Window};
    use tollgate_tests::Harness;

    const YAML: &str = "
name: pro
limits:
  - {meter: requests, window: day, limit: 1500}
  - {meter: requests, window: month, limit: 30000}
  - {meter: tokens, window: month, limit: 1000000}
overage: hard
failure: open
";

    #[test]
    fn reads_yaml_and_json_one_or_many() {
        let one = parse_plans(YAML, Path::new("pro.yaml")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].limits.len(), 3);
        assert_eq!(one[0].failure, FailurePolicy::Open);
        let many = parse_plans(
            "- {name: free, limits: [{meter: requests, window: day, limit: 100}]}\n- {name: metered, overage: soft}\n",
            Path::new("plans.yml"),
        )
        .unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(many[1].overage, OveragePolicy::Soft);
        let json =
            r#"{"name":"anonymous","limits":[{"meter":"requests","window":"hour","limit":60}]}"#;
        let p = parse_plans(json, Path::new("anon.JSON")).unwrap();
        assert_eq!(p[0].limits[0].window, Window::Hour);
        let list = format!("[{json}]");
        assert_eq!(parse_plans(&list, Path::new("a.json")).unwrap(), p);
        // JSON is YAML too.
        assert_eq!(parse_plans(json, Path::new("anon.txt")).unwrap(), p);
    }

    #[test]
    fn rejects_invalid_plans_with_a_reason() {
        for (text, file, why) in [
            ("name: x\nlimits: [{meter: requests, window: week, limit: 1}]", "a.yaml", "not a plan"),
            ("name: x\nlimits: [{meter: requests, window: day, limit: 0}]", "a.yaml", "must be positive"),
            ("name: x\nsurprise: 1", "a.yaml", "not a plan"),
            ("name: Bad Name", "a.yaml", "plan name"),
            ("- {name: a}\n- {name: a}", "a.yaml", "twice"),
            ("[]", "a.json", "no plan"),
            ("{\"name\": ", "a.json", "not valid JSON"),
            ("name: [", "a.yaml", "not valid YAML"),
            (
                "name: x\nlimits: [{meter: requests, window: day, limit: 1}, {meter: requests, window: day, limit: 2}]",
                "a.yaml",
                "two limits",
            ),
        ] {
            let err = format!("{:#}", parse_plans(text, Path::new(file)).unwrap_err());
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn lists_plans_as_a_table() {
        let plans = parse_plans(YAML, Path::new("pro.yaml")).unwrap();
        let table = render_list(&plans);
        assert!(table.starts_with("NAME"));
        assert!(table.contains("pro   hard     open     requests 1500/day, requests 30000/month, tokens 1000000/month"), "{table}");
        assert!(render_list(&[]).contains("no plans"));
    }

    #[tokio::test]
    async fn puts_lists_and_shows_plans_in_dynamodb() {
        let h = Harness::new("cliplans").await;
        let store = KeysStore::new(h.client(), h.tables.keys.clone());
        assert!(find_plan(&store, "pro")
            .await
            .unwrap_err()
            .to_string()
            .contains("no plans are defined"));
        let plans = parse_plans(YAML, Path::new("pro.yaml")).unwrap();
        let lines = put_plans(&store, &plans).await.unwrap();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("stored plan pro: requests 1500/day"),
            "{}",
            lines[0]
        );
        let more = parse_plans("- {name: anonymous}\n", Path::new("x.yaml")).unwrap();
        assert!(put_plans(&store, &more).await.unwrap()[0].contains("never blocked"));
        let listed = list_plans(&store).await.unwrap();
        assert_eq!(
            listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["anonymous", "pro"]
        );
        assert_eq!(find_plan(&store, "pro").await.unwrap(), plans[0]);
        let err = find_plan(&store, "gold").await.unwrap_err().to_string();
        assert!(err.contains("anonymous, pro"), "{err}");
        // Put replaces.
        let mut changed = plans[0].clone();
        changed.overage = OveragePolicy::Soft;
        put_plans(&store, std::slice::from_ref(&changed))
            .await
            .unwrap();
        assert_eq!(find_plan(&store, "pro").await.unwrap(), changed);
    }
}
