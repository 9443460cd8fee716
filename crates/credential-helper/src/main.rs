//! `docker-credential-hubkey ACTION`: the docker credential helper. All behaviour lives in
//! [`hubkey_credential_helper::run`]; this wires it to stdin, stdout and the OS keyring.

use std::io::Write;
use std::process::ExitCode;

use hubkey_keyring::OsKeyring;

fn main() -> ExitCode {
    let mut args = std::env::args();
    let program = args
        .next()
        .unwrap_or_else(|| "docker-credential-hubkey".to_owned());
    let stdout = std::io::stdout();
    let mut output = stdout.lock();
    let Some(action) = args.next() else {
        let _ = writeln!(output, "{}", hubkey_credential_helper::usage(&program));
        return ExitCode::FAILURE;
    };
    let code = hubkey_credential_helper::serve(
        &action,
        &mut std::io::stdin().lock(),
        &mut output,
        &OsKeyring::new(),
    );
    ExitCode::from(code)
}
