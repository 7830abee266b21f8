//! `breakwater`: wiring only (see the library for what each command does).

use std::process::ExitCode;

use breakwater::aws::Aws;
use breakwater_cli::{functions, Operator};
use clap::{Parser, Subcommand};

/// Operate Breakwater: pause and resume its functions, and see what they are doing.
///
/// Against AWS it takes the profile and region as the AWS CLI does; against the sandbox,
/// `source target/sandbox/sandbox.env` (written by `make up`) first.
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
    let bucket = cli.state_bucket.ok_or(
        "no state bucket: pass --state-bucket or set BREAKWATER_STATE_BUCKET (the stack output StateBucketName)",
    )?;
    let operator = Operator::new(aws.s3(), &bucket);
    let result = match cli.command {
        Command::Pause { function, reason } => {
            let functions = functions(function.as_deref())?;
            operator.pause(&functions, &who(&aws).await, &reason).await
        }
        Command::Resume { function } => operator.resume(&functions(function.as_deref())?).await,
        Command::Status => operator.status().await,
    };
    result.map_err(|e| e.to_string())
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
