//! `breakwater`: wiring only (see the library for what each command does).

use std::process::ExitCode;

use breakwater::aws::Aws;
use breakwater_cli::failover::{self as drills, Followed, Request};
use breakwater_cli::invoke::Function;
use breakwater_cli::{functions, redrive, Operator};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

/// Operate Breakwater: drills and failovers followed live, their history and reports, the
/// failover plan and its precheck, the pause switch, re-delivery of failed events.
///
/// Against AWS it takes the profile and region as the AWS CLI does; against the sandbox,
/// `source target/sandbox/<region>.env` (written by `make up`) first.
#[derive(Debug, Parser)]
#[command(name = "breakwater", version)]
struct Cli {
    /// The AWS profile (default: AWS_PROFILE, else `default`).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// The region of the Breakwater stack to operate (default: AWS_REGION, else the profile's).
    #[arg(long, global = true)]
    region: Option<String>,
    /// The stack's state bucket in that region (the stack output `StateBucketName`).
    #[arg(long, global = true, env = "BREAKWATER_STATE_BUCKET")]
    state_bucket: Option<String>,
    /// The function to invoke (the stack output `<Function>FunctionName`; default:
    /// BREAKWATER_<FUNCTION>_FUNCTION, e.g. BREAKWATER_FAILOVER_FUNCTION).
    #[arg(long, global = true)]
    function_name: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stop a function (all five when none is named) from acting, from its next invocation: it
    /// changes nothing, and logs, notifies and answers what it would have done. No redeploy.
    Pause {
        /// budget, tiering, spot, rollback or failover.
        function: Option<String>,
        /// Why, for the people on the topic and the next operator.
        #[arg(long)]
        reason: String,
    },
    /// Let a paused function act again, from its next invocation.
    Resume {
        /// budget, tiering, spot, rollback or failover (all five when none is named).
        function: Option<String>,
    },
    /// Per function: paused or acting, the work it holds now, failover's executions.
    Status,
    #[command(flatten)]
    Manual(ManualCommand),
    /// The executions of the failover plans, newest first.
    History {
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// A report: the Markdown here, its picture (SVG) to a file — a failover execution's
    /// timeline against the RTO, a spot drain's lanes, a budget period's ladder, tiering's
    /// bytes per storage class.
    Report {
        /// The report's id: a failover execution (`breakwater history`), a spot instance, a
        /// budget and period (`platform-2026-11`), a tiering `savings-…` (default: the newest).
        id: Option<String>,
        /// The function that wrote it.
        #[arg(long, default_value = "failover")]
        function: String,
        /// Where the SVG goes (default: `<id>.svg`).
        #[arg(long)]
        svg: Option<String>,
    },
    /// The plan's steps, order, endpoints and expected timeline against the RTO (changes nothing).
    Plan {
        /// A plan file instead of the stored plan.
        #[arg(long)]
        plan_file: Option<String>,
    },
    /// Whether the plan can fail over now, check by check; exits 1 when it cannot.
    Precheck {
        /// A plan file instead of the stored plan.
        #[arg(long)]
        plan_file: Option<String>,
    },
    /// Re-deliver the events in a function's failure queue to the function.
    Redrive {
        /// budget, tiering, spot, rollback or failover.
        function: String,
        /// The queue (the stack output `<Function>FailureQueueUrl` / `…DeadLetterQueueUrl`;
        /// default: BREAKWATER_<FUNCTION>_FAILURE_QUEUE).
        #[arg(long)]
        queue_url: Option<String>,
        /// At most this many messages.
        #[arg(long, default_value_t = 100)]
        max: usize,
        /// List what would be re-delivered, and leave it.
        #[arg(long)]
        dry_run: bool,
        /// Re-deliver manual commands too (`{"command": …}`: not de-duplicated, each acts again).
        #[arg(long)]
        include_commands: bool,
    },
}

/// The manual failover commands: checked, started, and followed to their end.
#[derive(Debug, Subcommand)]
enum ManualCommand {
    /// Run a DR drill of the plan (on its drill copy), and follow it live to its end.
    Drill(Manual),
    /// Fail over to the secondary region now (unplanned: the RPO guard applies), and follow it.
    Failover {
        #[command(flatten)]
        manual: Manual,
        /// Accept losing up to this many seconds of writes (the RPO guard's limit otherwise).
        #[arg(long)]
        accept_data_loss_seconds: Option<u64>,
    },
    /// Move the writer and traffic with no data loss (planned), and follow it.
    Switchover(Manual),
    /// Back to the primary region once it is back: re-protect, then a planned move back.
    Failback(Manual),
}

impl ManualCommand {
    /// The command's name (the function's `command`), what it takes, and a failover's accepted
    /// data loss.
    fn parts(self) -> (&'static str, Manual, Option<u64>) {
        match self {
            ManualCommand::Drill(m) => ("drill", m, None),
            ManualCommand::Failover {
                manual,
                accept_data_loss_seconds,
            } => ("failover", manual, accept_data_loss_seconds),
            ManualCommand::Switchover(m) => ("switchover", m, None),
            ManualCommand::Failback(m) => ("failback", m, None),
        }
    }
}

/// What every manual failover command takes.
#[derive(Debug, Args)]
struct Manual {
    /// The plan's name: a confirmation (the function refuses any other).
    #[arg(long)]
    confirm: String,
    /// Who runs it (default: your STS ARN).
    #[arg(long)]
    by: Option<String>,
    /// A plan file (a drill's inline plan) instead of the stored plan.
    #[arg(long)]
    plan_file: Option<String>,
    /// Print the execution's id and return, without following it.
    #[arg(long)]
    no_wait: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("breakwater: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<String, String> {
    let aws = Aws::for_operator(cli.region.as_deref(), cli.profile.as_deref()).await;
    let bucket = cli.state_bucket.clone().ok_or(
        "no state bucket: pass --state-bucket or set BREAKWATER_STATE_BUCKET (the stack output StateBucketName)",
    )?;
    let operator = Operator::new(aws.s3(), &bucket);
    let invoked = |function: &str| -> Result<Function, String> {
        let variable = format!("BREAKWATER_{}_FUNCTION", function.to_uppercase());
        let name = cli
            .function_name
            .clone()
            .or_else(|| std::env::var(&variable).ok())
            .ok_or(format!(
                "which {function} function? pass --function-name or set {variable} (the stack output {}FunctionName)",
                capitalized(function)
            ))?;
        Ok(Function::new(&aws, &name))
    };
    let result = match cli.command {
        Command::Pause { function, reason } => {
            let functions = functions(function.as_deref())?;
            operator.pause(&functions, &who(&aws).await, &reason).await
        }
        Command::Resume { function } => operator.resume(&functions(function.as_deref())?).await,
        Command::Status => operator.status().await,
        Command::Manual(command) => {
            let (verb, m, accept) = command.parts();
            return manual(&operator, &invoked("failover")?, verb, m, accept, &aws).await;
        }
        Command::History { limit } => drills::history(&operator, limit).await,
        Command::Report { id, function, svg } => {
            let id = match id {
                Some(id) => id,
                None if function == "failover" => {
                    drills::newest(&operator).await.map_err(|e| e.to_string())?
                }
                None => drills::newest_report(&operator, &function)
                    .await
                    .map_err(|e| e.to_string())?,
            };
            let svg = svg.unwrap_or_else(|| format!("{}.svg", id.replace(['%', '/'], "_")));
            drills::report(&operator, &function, &id, &svg).await
        }
        Command::Plan { plan_file } => Ok(drills::plan_table(
            &ask(&invoked("failover")?, "plan", plan_file).await?,
        )),
        Command::Precheck { plan_file } => {
            let answer = ask(&invoked("failover")?, "precheck", plan_file).await?;
            let (table, ready) = drills::precheck_table(&answer);
            if !ready {
                print!("{table}");
                return Err("the plan is not ready to fail over (the lines marked NOT)".into());
            }
            Ok(table)
        }
        Command::Redrive {
            function,
            queue_url,
            max,
            dry_run,
            include_commands,
        } => {
            functions(Some(&function))?;
            let variable = format!("BREAKWATER_{}_FAILURE_QUEUE", function.to_uppercase());
            let queue = queue_url.or_else(|| std::env::var(&variable).ok()).ok_or(format!(
                "which queue? pass --queue-url or set {variable} (the stack output {}FailureQueueUrl or {}DeadLetterQueueUrl)",
                capitalized(&function),
                capitalized(&function)
            ))?;
            let sqs = aws_sdk_sqs::Client::new(aws.config());
            let options = redrive::Options {
                max,
                dry_run,
                include_commands,
            };
            redrive::redrive(&sqs, &queue, &invoked(&function)?, options).await
        }
    };
    result.map_err(|e| e.to_string())
}

/// `Spot` for `spot`: the stack outputs' spelling.
fn capitalized(function: &str) -> String {
    let mut chars = function.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The plan in `file`, when given.
fn plan_file(file: Option<&str>) -> Result<Option<Value>, String> {
    let Some(file) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{file}: not JSON ({e})"))
}

/// The failover function's answer to `command` (`plan`, `precheck`), with the plan in `file`
/// inline when given.
async fn ask(function: &Function, command: &str, file: Option<String>) -> Result<Value, String> {
    let mut payload = json!({ "command": command });
    if let Some(plan) = plan_file(file.as_deref())? {
        payload["plan"] = plan;
    }
    function.call(&payload).await.map_err(|e| e.to_string())
}

/// A manual failover command: the preflight, the start, and (unless `--no-wait`) following it;
/// a failed execution is a failed command.
async fn manual(
    operator: &Operator,
    function: &Function,
    command: &str,
    m: Manual,
    accept_data_loss_seconds: Option<u64>,
    aws: &Aws,
) -> Result<String, String> {
    let by = match m.by {
        Some(by) => by,
        None => who(aws).await,
    };
    let request = Request {
        command: command.into(),
        confirm: m.confirm,
        by,
        accept_data_loss_seconds,
        plan: plan_file(m.plan_file.as_deref())?,
    };
    let started = drills::start(operator, function, &request)
        .await
        .map_err(|e| e.to_string())?;
    let id = started.id;
    if m.no_wait {
        return Ok(format!("{id}\n"));
    }
    // The exit status is 0 only for an execution followed to its success.
    match drills::follow(operator, &id, started.rto_target_seconds)
        .await
        .map_err(|e| e.to_string())?
    {
        Followed::Ended(text, true) => Ok(text),
        Followed::Ended(text, false) => {
            print!("{text}");
            Err(format!(
                "the {command} did not succeed: breakwater report {id}"
            ))
        }
        Followed::Interrupted(message) => Err(message),
    }
}

/// Who is operating: the caller's ARN (STS GetCallerIdentity), else the local user name — a
/// pause in an emergency is not refused for want of an answer from STS.
async fn who(aws: &Aws) -> String {
    match aws_sdk_sts::Client::new(aws.config())
        .get_caller_identity()
        .send()
        .await
    {
        Ok(identity) => identity.arn().unwrap_or("unknown caller").to_string(),
        Err(e) => {
            let user = std::env::var("USER").unwrap_or_else(|_| "unknown user".into());
            eprintln!("breakwater: STS did not say who you are ({e}); the pause is signed {user}");
            user
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command's words: placeholders (`<…>`, `…`) as plain values, quotes as the shell reads them.
    fn words(command: &str) -> Vec<String> {
        let mut plain = String::new();
        let mut in_placeholder = false;
        for c in command.chars() {
            match c {
                '<' => in_placeholder = true,
                '>' if in_placeholder => {
                    in_placeholder = false;
                    plain.push('X');
                }
                '…' => plain.push('X'),
                _ if in_placeholder => {}
                _ => plain.push(c),
            }
        }
        let (mut out, mut word, mut quote) = (Vec::new(), String::new(), None);
        for c in plain.chars() {
            match (c, quote) {
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (' ', None) => {
                    if !word.is_empty() {
                        out.push(std::mem::take(&mut word));
                    }
                }
                (c, _) => word.push(c),
            }
        }
        if !word.is_empty() {
            out.push(word);
        }
        out
    }

    /// Every `breakwater` command in docs/ (inline code and code blocks) is one this binary
    /// parses, so the docs cannot drift from the command (issue #20).
    #[test]
    fn every_breakwater_command_in_the_docs_parses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let docs = root.join("docs");
        let mut files = vec![root.join("README.md")];
        for dir in [docs.clone(), docs.join("runbooks")] {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "md") {
                    files.push(path);
                }
            }
        }
        let mut checked = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // Code blocks line by line; the prose joined, since an inline span may wrap.
            let (mut fenced, mut prose, mut found) = (false, String::new(), Vec::new());
            for line in text.lines() {
                if line.trim_start().starts_with("```") {
                    fenced = !fenced;
                } else if fenced {
                    found.push(line.trim().to_string());
                } else {
                    prose.push(' ');
                    prose.push_str(line.trim());
                }
            }
            found.extend(prose.split('`').skip(1).step_by(2).map(str::to_string));
            for command in found.iter().filter(|c| c.starts_with("breakwater ")) {
                let command = command.split(" # ").next().unwrap_or(command);
                {
                    checked += 1;
                    if let Err(e) = Cli::try_parse_from(words(command)) {
                        panic!("{}: `{command}` does not parse:\n{e}", file.display());
                    }
                }
            }
        }
        assert!(
            checked >= 10,
            "only {checked} breakwater commands found in docs/"
        );
    }

    #[test]
    fn placeholders_and_quotes_become_words() {
        assert_eq!(
            words(r#"breakwater pause spot --reason "change freeze …" <x>"#),
            vec![
                "breakwater",
                "pause",
                "spot",
                "--reason",
                "change freeze X",
                "X"
            ]
        );
    }
}
