//! Prepares a throwaway environment for `make run-demo`: a fresh CA and server certificate, a
//! tokens file (hashes only) for the given users, and each user's token in `<user>.token`.

use std::path::PathBuf;

use clap::Parser;
use courier_server::dev_pki::{DevPki, random_token};
use courier_server::middleware::auth::token_file_line;

/// Writes demo certificates and tokens into a directory.
#[derive(Debug, Parser)]
struct Args {
    /// Directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Users to make tokens for.
    #[arg(long, value_delimiter = ',', default_value = "jack,mike")]
    users: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    DevPki::generate()?.write_to(&args.out)?;
    let mut tokens_file =
        String::from("# throwaway demo tokens: <user> sha256:<hex of the token>\n");
    for user in &args.users {
        let token = random_token();
        tokens_file.push_str(&token_file_line(user, &token));
        tokens_file.push('\n');
        std::fs::write(args.out.join(format!("{user}.token")), token)?;
    }
    std::fs::write(args.out.join("tokens"), tokens_file)?;
    Ok(())
}
