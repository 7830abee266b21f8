//! The credentials a function binary runs with in the sandbox: its role from template.yaml.
//!
//! On AWS each function runs with its execution role's temporary credentials
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). In the sandbox every role
//! shares one access key and the session token names the role: the function, its home region and
//! its deployment's two regions. moto's server (`sandbox/moto_iam.py`) evaluates each call so
//! signed against that function's policies in template.yaml, expanded by the SAM translator, so a
//! call the template does not grant is `AccessDenied`, as on AWS.

/// The access key of every sandbox role (`ROLE_KEY` in `moto_iam.py`).
pub const ROLE_KEY: &str = "ASIABREAKWATERSANDBOX";
/// Its secret (`ROLE_SECRET` in `moto_iam.py`).
pub const ROLE_SECRET: &str = "breakwater-sandbox-role-secret";
/// The session token's prefix (`TOKEN_PREFIX` in `moto_iam.py`).
const TOKEN_PREFIX: &str = "breakwater-sandbox:";

/// The functions of template.yaml (their `BuildProperties: Binary:`); other binaries of the
/// sandbox (the probe, the floor) have no role and keep the environment they were given.
pub const FUNCTIONS: [&str; 5] = ["budget", "tiering", "spot", "rollback", "failover"];

/// The credential variables of `function`'s role deployed in `region`, or nothing when the binary
/// is not a function of the template. `env` is the function's environment: its
/// `BREAKWATER_PRIMARY_REGION` / `BREAKWATER_SECONDARY_REGION` are the deployment's parameters, as
/// the template passes them.
pub fn role_env(function: &str, region: &str, env: &[(String, String)]) -> Vec<(String, String)> {
    if !FUNCTIONS.contains(&function) {
        return Vec::new();
    }
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut parameters = serde_json::Map::new();
    for (parameter, variable) in [
        ("PrimaryRegion", "BREAKWATER_PRIMARY_REGION"),
        ("SecondaryRegion", "BREAKWATER_SECONDARY_REGION"),
    ] {
        if let Some(value) = lookup(variable) {
            parameters.insert(parameter.into(), value.into());
        }
    }
    let claims = serde_json::json!({
        "function": function,
        "region": region,
        "parameters": parameters,
    });
    let hex: String = claims
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    vec![
        ("AWS_ACCESS_KEY_ID".into(), ROLE_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), ROLE_SECRET.into()),
        ("AWS_SESSION_TOKEN".into(), format!("{TOKEN_PREFIX}{hex}")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_gets_its_role_and_a_sandbox_binary_keeps_its_environment() {
        // GIVEN a failover deployment across two regions
        let env = vec![
            (
                "BREAKWATER_PRIMARY_REGION".to_string(),
                "us-east-1".to_string(),
            ),
            (
                "BREAKWATER_SECONDARY_REGION".to_string(),
                "us-west-2".to_string(),
            ),
        ];
        // WHEN the sandbox starts the failover binary in the secondary region
        let vars = role_env("failover", "us-west-2", &env);
        // THEN it signs with the role key, and the token names the function, region and regions
        assert_eq!(vars[0], ("AWS_ACCESS_KEY_ID".into(), ROLE_KEY.into()));
        let token = &vars[2].1;
        let hex = token.strip_prefix(TOKEN_PREFIX).unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let claims: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(claims["function"], "failover");
        assert_eq!(claims["region"], "us-west-2");
        assert_eq!(claims["parameters"]["PrimaryRegion"], "us-east-1");
        // AND the probe, which the template does not deploy, gets nothing
        assert!(role_env("probe", "us-east-1", &env).is_empty());
    }
}
