//! Where the client gets passwords and recovery keys from.
//!
//! In order: standard input when `--password-stdin` is given (one secret a line, in the order the
//! command documents), else the command's environment variable (`BLINDFOLD_PASSWORD`,
//! `BLINDFOLD_NEW_PASSWORD`, `BLINDFOLD_RECOVERY_KEY`, `BLINDFOLD_TOTP`), else a prompt without
//! echo when standard input is a terminal. This module must never echo, print or log a secret; every secret it hands
//! out is in a `Zeroizing` buffer.

use std::io::{self, BufRead};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::error::ClientError;

/// One kind of secret a command asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecretKind {
    /// The account's password as it is now.
    Password,
    /// The password chosen at sign-up: from `BLINDFOLD_PASSWORD`, typed twice on a terminal.
    ChosenPassword,
    /// A password being chosen, typed twice on a terminal.
    NewPassword,
    /// The recovery key shown at sign-up.
    RecoveryKey,
    /// A second factor: the authenticator's current one-time code, or a backup code.
    SecondFactor,
}

impl SecretKind {
    fn variable(self) -> &'static str {
        match self {
            SecretKind::Password | SecretKind::ChosenPassword => "BLINDFOLD_PASSWORD",
            SecretKind::NewPassword => "BLINDFOLD_NEW_PASSWORD",
            SecretKind::RecoveryKey => "BLINDFOLD_RECOVERY_KEY",
            SecretKind::SecondFactor => "BLINDFOLD_TOTP",
        }
    }

    fn what(self) -> &'static str {
        match self {
            SecretKind::Password | SecretKind::ChosenPassword => "password",
            SecretKind::NewPassword => "new password",
            SecretKind::RecoveryKey => "recovery key",
            SecretKind::SecondFactor => "one-time code",
        }
    }

    /// Whether a terminal user types it twice, to catch a typo in a password being chosen.
    fn confirmed(self) -> bool {
        matches!(self, SecretKind::ChosenPassword | SecretKind::NewPassword)
    }
}

/// Reads a secret from the terminal without echo, showing the prompt.
pub(crate) type Prompter = dyn Fn(&str) -> io::Result<String>;

/// Looks up an environment variable.
pub(crate) type Environment = dyn Fn(&str) -> Option<String>;

/// The places secrets come from, fixed once per command.
pub(crate) struct SecretSource {
    env: Box<Environment>,
    stdin: Option<Box<dyn BufRead>>,
    terminal: Option<Box<Prompter>>,
}

impl SecretSource {
    /// The process's own: its environment, its standard input when `password_stdin`, and the
    /// terminal when standard input is one.
    pub(crate) fn from_process(password_stdin: bool) -> SecretSource {
        use std::io::IsTerminal;

        let stdin: Option<Box<dyn BufRead>> =
            password_stdin.then(|| Box::new(io::stdin().lock()) as Box<dyn BufRead>);
        let terminal: Option<Box<Prompter>> = io::stdin()
            .is_terminal()
            .then(|| Box::new(|prompt: &str| rpassword::prompt_password(prompt)) as Box<Prompter>);
        SecretSource::new(Box::new(|name| std::env::var(name).ok()), stdin, terminal)
    }

    /// A source from explicit parts: `stdin` is used only when given, `terminal` only when there
    /// is one.
    pub(crate) fn new(
        env: Box<Environment>,
        stdin: Option<Box<dyn BufRead>>,
        terminal: Option<Box<Prompter>>,
    ) -> SecretSource {
        SecretSource {
            env,
            stdin,
            terminal,
        }
    }

    /// Reads one secret of `kind`. The result is never empty.
    ///
    /// LIMITATION: a secret taken from the environment stays in the process's environment block
    /// (clearing it needs `unsafe` in edition 2024); prefer `--password-stdin` in scripts.
    pub(crate) fn read(&mut self, kind: SecretKind) -> Result<Zeroizing<String>, ClientError> {
        let secret = if let Some(stdin) = self.stdin.as_mut() {
            read_line(stdin.as_mut(), kind)?
        } else if let Some(value) = (self.env)(kind.variable()) {
            Zeroizing::new(value)
        } else if let Some(prompt) = self.terminal.as_ref() {
            ask(prompt.as_ref(), kind)?
        } else {
            return Err(ClientError::MissingSecret {
                what: kind.what(),
                variable: kind.variable(),
            });
        };

        if secret.is_empty() {
            return Err(ClientError::Usage(format!(
                "the {} must not be empty",
                kind.what()
            )));
        }
        Ok(secret)
    }
}

/// One line of standard input, without its line ending (other whitespace is kept: it may be
/// part of the password).
fn read_line(stdin: &mut dyn BufRead, kind: SecretKind) -> Result<Zeroizing<String>, ClientError> {
    let mut line = Zeroizing::new(String::with_capacity(256));
    let read = stdin
        .read_line(&mut line)
        .map_err(|_| ClientError::Usage(format!("cannot read the {} from stdin", kind.what())))?;
    if read == 0 {
        return Err(ClientError::Usage(format!(
            "stdin ended before the {}",
            kind.what()
        )));
    }
    let kept = line.trim_end_matches('\n').trim_end_matches('\r').len();
    line.truncate(kept);
    Ok(line)
}

/// Prompts on the terminal; a password being chosen is asked twice and must match.
fn ask(prompt: &Prompter, kind: SecretKind) -> Result<Zeroizing<String>, ClientError> {
    let unreadable = |_| ClientError::Usage(format!("cannot read the {}", kind.what()));
    let first =
        Zeroizing::new(prompt(&format!("{}: ", capitalised(kind.what()))).map_err(unreadable)?);
    if !kind.confirmed() {
        return Ok(first);
    }

    let repeat = format!("Repeat the {}: ", kind.what());
    let again = Zeroizing::new(prompt(&repeat).map_err(unreadable)?);
    if !bool::from(first.as_bytes().ct_eq(again.as_bytes())) {
        return Err(ClientError::Usage("the two passwords differ".into()));
    }
    Ok(first)
}

fn capitalised(what: &str) -> String {
    let mut chars = what.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> Box<Environment> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Box::new(move |name| map.get(name).cloned())
    }

    fn terminal_answering(answers: &[&str]) -> (Box<Prompter>, Arc<Mutex<Vec<String>>>) {
        let answers = Arc::new(Mutex::new(
            answers.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        ));
        let prompts = Arc::new(Mutex::new(Vec::new()));
        let seen = prompts.clone();
        let prompter = Box::new(move |prompt: &str| {
            seen.lock().unwrap().push(prompt.to_string());
            Ok(answers.lock().unwrap().remove(0))
        });
        (prompter, prompts)
    }

    #[test]
    fn the_password_is_read_from_blindfold_password() {
        let mut source =
            SecretSource::new(env_of(&[("BLINDFOLD_PASSWORD", "hunter2 ")]), None, None);
        assert_eq!(
            source.read(SecretKind::Password).unwrap().as_str(),
            "hunter2 "
        );
    }

    #[test]
    fn each_kind_of_secret_has_its_own_variable() {
        let env = env_of(&[
            ("BLINDFOLD_PASSWORD", "old"),
            ("BLINDFOLD_NEW_PASSWORD", "new"),
            ("BLINDFOLD_RECOVERY_KEY", "ABCD-EFGH"),
        ]);
        let mut source = SecretSource::new(env, None, None);
        assert_eq!(
            source.read(SecretKind::NewPassword).unwrap().as_str(),
            "new"
        );
        assert_eq!(
            source.read(SecretKind::RecoveryKey).unwrap().as_str(),
            "ABCD-EFGH"
        );
        assert_eq!(source.read(SecretKind::Password).unwrap().as_str(), "old");
    }

    #[test]
    fn password_stdin_gives_one_secret_a_line_in_order_and_beats_the_environment() {
        let stdin = Box::new(io::Cursor::new(b"current pass\r\nnew pass\n".to_vec()));
        let env = env_of(&[("BLINDFOLD_PASSWORD", "from-env")]);
        let mut source = SecretSource::new(env, Some(stdin), None);
        assert_eq!(
            source.read(SecretKind::Password).unwrap().as_str(),
            "current pass"
        );
        assert_eq!(
            source.read(SecretKind::NewPassword).unwrap().as_str(),
            "new pass"
        );
        assert!(matches!(
            source.read(SecretKind::Password),
            Err(ClientError::Usage(_))
        ));
    }

    #[test]
    fn without_stdin_variable_or_terminal_the_secret_is_missing() {
        let mut source = SecretSource::new(env_of(&[]), None, None);
        let missing = source.read(SecretKind::RecoveryKey).unwrap_err();
        assert!(matches!(
            missing,
            ClientError::MissingSecret {
                variable: "BLINDFOLD_RECOVERY_KEY",
                ..
            }
        ));
    }

    #[test]
    fn an_empty_password_is_refused() {
        let mut source = SecretSource::new(env_of(&[("BLINDFOLD_PASSWORD", "")]), None, None);
        assert!(matches!(
            source.read(SecretKind::Password),
            Err(ClientError::Usage(_))
        ));
    }

    #[test]
    fn a_new_password_on_a_terminal_is_asked_twice_and_must_match() {
        let (terminal, prompts) = terminal_answering(&["s3cret", "s3cret"]);
        let mut source = SecretSource::new(env_of(&[]), None, Some(terminal));
        assert_eq!(
            source.read(SecretKind::NewPassword).unwrap().as_str(),
            "s3cret"
        );
        assert_eq!(prompts.lock().unwrap().len(), 2);

        let (terminal, _) = terminal_answering(&["s3cret", "s3creT"]);
        let mut source = SecretSource::new(env_of(&[]), None, Some(terminal));
        assert!(matches!(
            source.read(SecretKind::NewPassword),
            Err(ClientError::Usage(_))
        ));
    }

    #[test]
    fn the_password_chosen_at_signup_comes_from_blindfold_password_or_is_typed_twice() {
        let env = env_of(&[("BLINDFOLD_PASSWORD", "chosen")]);
        let mut source = SecretSource::new(env, None, None);
        assert_eq!(
            source.read(SecretKind::ChosenPassword).unwrap().as_str(),
            "chosen"
        );

        let (terminal, prompts) = terminal_answering(&["pw", "pw"]);
        let mut source = SecretSource::new(env_of(&[]), None, Some(terminal));
        assert_eq!(
            source.read(SecretKind::ChosenPassword).unwrap().as_str(),
            "pw"
        );
        assert_eq!(
            *prompts.lock().unwrap(),
            vec!["Password: ", "Repeat the password: "]
        );
    }

    #[test]
    fn a_second_factor_comes_from_blindfold_totp_or_one_prompt() {
        let env = env_of(&[("BLINDFOLD_TOTP", "123456"), ("BLINDFOLD_PASSWORD", "pw")]);
        let mut source = SecretSource::new(env, None, None);
        assert_eq!(
            source.read(SecretKind::SecondFactor).unwrap().as_str(),
            "123456"
        );

        let (terminal, prompts) = terminal_answering(&["ABCD-EFGH"]);
        let mut source = SecretSource::new(env_of(&[]), None, Some(terminal));
        assert_eq!(
            source.read(SecretKind::SecondFactor).unwrap().as_str(),
            "ABCD-EFGH"
        );
        assert_eq!(
            *prompts.lock().unwrap(),
            vec!["One-time code: ".to_string()]
        );

        let mut source = SecretSource::new(env_of(&[]), None, None);
        let missing = source.read(SecretKind::SecondFactor).unwrap_err();
        assert!(missing.to_string().contains("BLINDFOLD_TOTP"));
    }

    #[test]
    fn the_current_password_on_a_terminal_is_asked_once() {
        let (terminal, prompts) = terminal_answering(&["pw"]);
        let mut source = SecretSource::new(env_of(&[]), None, Some(terminal));
        assert_eq!(source.read(SecretKind::Password).unwrap().as_str(), "pw");
        assert_eq!(*prompts.lock().unwrap(), vec!["Password: ".to_string()]);
    }
}
