//! The host calls that ask the user something (`Read-Host`, `Get-Credential`,
//! confirmations, mandatory parameters), read out of a [`HostCall`] as a
//! typed [`HostPrompt`], and the typed [`HostAnswer`] turned back into the
//! value the server expects (MS-PSRP 2.2.3.17 method ids 11, 12, 23-26, 56;
//! the PSCredential of 2.2.3.25).
//!
//! ```
//! use psrp_core::host::{HostCall, HostMethodId};
//! use psrp_core::prompt::{HostAnswer, HostPrompt};
//!
//! let call = HostCall { call_id: 1, method: HostMethodId::ReadLine, parameters: vec![] };
//! let prompt = HostPrompt::from_call(&call).unwrap().unwrap();
//! assert_eq!(prompt, HostPrompt::ReadLine);
//! let value = prompt.answer_value(HostAnswer::Line("yes".into())).unwrap();
//! assert_eq!(value.as_str(), Some("yes"));
//! ```

use crate::clixml::{PsValue, SecureString};
use crate::host::{HostCall, HostMethodId};
use crate::message::values::{dict_entries, hashtable, list_items, string_of, ObjBuilder, Props};
use crate::message::MessageError;

/// A question the server asks through the host.
#[derive(Clone, Debug, PartialEq)]
pub enum HostPrompt {
    /// `UI.ReadLine()`: `Read-Host` without `-Prompt`. Answer: [`HostAnswer::Line`].
    ReadLine,
    /// `UI.ReadLineAsSecureString()`: `Read-Host -AsSecureString` without
    /// `-Prompt`. Answer: [`HostAnswer::Secure`].
    ReadLineAsSecureString,
    /// `UI.Prompt(caption, message, fields)`: `Read-Host -Prompt`, a missing
    /// mandatory parameter. Answer: [`HostAnswer::Fields`], one value per field.
    Fields {
        /// The caption (often empty).
        caption: String,
        /// The message (often empty).
        message: String,
        /// What to ask, in order.
        fields: Vec<FieldDescription>,
    },
    /// `UI.PromptForCredential(...)`: `Get-Credential`. Answer:
    /// [`HostAnswer::Credential`].
    Credential {
        /// The caption.
        caption: String,
        /// The message.
        message: String,
        /// The user name offered (`Get-Credential -UserName`), may be empty.
        user_name: String,
        /// The target (a server or domain), may be empty.
        target_name: String,
    },
    /// `UI.PromptForChoice(...)`: confirmations (`-Confirm`,
    /// `ShouldContinue`). Answer: [`HostAnswer::Choice`].
    Choice {
        /// The caption (e.g. `Confirm`).
        caption: String,
        /// The message (the question).
        message: String,
        /// The choices, in order.
        choices: Vec<ChoiceDescription>,
        /// The choice taken on an empty answer, if any.
        default: Option<usize>,
    },
    /// `PromptForChoice` with multiple selection. Answer: [`HostAnswer::Choices`].
    MultipleChoice {
        /// The caption.
        caption: String,
        /// The message.
        message: String,
        /// The choices, in order.
        choices: Vec<ChoiceDescription>,
        /// The choices taken on an empty answer.
        defaults: Vec<usize>,
    },
}

/// One field of a [`HostPrompt::Fields`] prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldDescription {
    /// The name (the key of the answer).
    pub name: String,
    /// The label shown, if any (else the name).
    pub label: String,
    /// The .NET type the value must have (`System.String`,
    /// `System.Security.SecureString`, `System.Management.Automation.PSCredential`...).
    pub type_name: String,
    /// Help text, may be empty.
    pub help_message: String,
}

impl FieldDescription {
    /// Whether the value is a secret (a SecureString).
    pub fn is_secure(&self) -> bool {
        short_type(&self.type_name).eq_ignore_ascii_case("SecureString")
    }

    /// Whether the value is a credential (user name and password).
    pub fn is_credential(&self) -> bool {
        short_type(&self.type_name).eq_ignore_ascii_case("PSCredential")
    }

    /// What to show: the label, else the name.
    pub fn display(&self) -> &str {
        if self.label.is_empty() {
            &self.name
        } else {
            &self.label
        }
    }
}

fn short_type(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// One choice of a [`HostPrompt::Choice`] prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct ChoiceDescription {
    /// The label with its hot key marked by `&` (`&Yes`, `Yes to &All`).
    pub label: String,
    /// Help text, may be empty.
    pub help_message: String,
}

impl ChoiceDescription {
    /// The label without the `&` marker.
    pub fn text(&self) -> String {
        self.label.replacen('&', "", 1)
    }

    /// The hot key: the character after `&`, if any.
    pub fn hot_key(&self) -> Option<char> {
        let (_, rest) = self.label.split_once('&')?;
        rest.chars().next()
    }
}

/// The user's answer to a [`HostPrompt`].
#[derive(Clone, PartialEq)]
pub enum HostAnswer {
    /// A line of text.
    Line(String),
    /// A secret, sent as a SecureString (encrypted with the session key).
    Secure(SecureString),
    /// One value per field of a [`HostPrompt::Fields`] prompt, by field
    /// name (make secrets with [`SecureString::new`] and credentials with
    /// [`credential_value`]).
    Fields(Vec<(String, PsValue)>),
    /// A credential: user name and password.
    Credential {
        /// The user name.
        user_name: String,
        /// The password.
        password: SecureString,
    },
    /// The index of the chosen choice.
    Choice(usize),
    /// The indexes of the chosen choices.
    Choices(Vec<usize>),
}

impl std::fmt::Debug for HostAnswer {
    // Answers may be secrets typed by a user: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            HostAnswer::Line(_) => "Line",
            HostAnswer::Secure(_) => "Secure",
            HostAnswer::Fields(_) => "Fields",
            HostAnswer::Credential { .. } => "Credential",
            HostAnswer::Choice(_) => "Choice",
            HostAnswer::Choices(_) => "Choices",
        };
        write!(f, "HostAnswer::{kind}(<hidden>)")
    }
}

/// An answer that does not fit its prompt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The answer is of another kind than the prompt asks for.
    #[error("a {given} answer does not answer {prompt}")]
    WrongKind {
        /// What the prompt is.
        prompt: &'static str,
        /// What the answer was.
        given: &'static str,
    },
    /// A choice index past the last choice.
    #[error("choice {index} does not exist (there are {count} choices)")]
    NoSuchChoice {
        /// The index given.
        index: usize,
        /// How many choices there are.
        count: usize,
    },
}

const CREDENTIAL_TYPE: &str = "System.Management.Automation.PSCredential";

/// A `System.Management.Automation.PSCredential` (MS-PSRP 2.2.3.25): the
/// user name and the password as a SecureString.
pub fn credential_value(user_name: &str, password: SecureString) -> PsValue {
    ObjBuilder::with_types(&[CREDENTIAL_TYPE, "System.Object"])
        .display(CREDENTIAL_TYPE)
        .adapted("UserName", user_name)
        .adapted("Password", password)
        .build()
}

fn text_param(call: &HostCall, index: usize) -> String {
    call.parameters
        .get(index)
        .and_then(string_of)
        .unwrap_or_default()
}

fn invalid(call: &HostCall, what: &str) -> MessageError {
    MessageError::InvalidValue {
        context: "host call parameters",
        property: "mp",
        value: format!("{}: {what}", call.method.name()),
    }
}

fn items<'a>(call: &'a HostCall, index: usize, what: &str) -> Result<&'a [PsValue], MessageError> {
    match call.parameters.get(index) {
        None | Some(PsValue::Null) => Ok(&[]),
        Some(v) => list_items(v).ok_or_else(|| invalid(call, what)),
    }
}

fn choices(call: &HostCall) -> Result<Vec<ChoiceDescription>, MessageError> {
    items(call, 2, "the choices are not a list")?
        .iter()
        .map(|c| {
            let p = Props::of(c, "ChoiceDescription")?;
            Ok(ChoiceDescription {
                label: p.get("label").and_then(string_of).unwrap_or_default(),
                help_message: p.get("helpMessage").and_then(string_of).unwrap_or_default(),
            })
        })
        .collect()
}

fn index_in(value: &PsValue, count: usize) -> Option<usize> {
    value
        .as_i64()
        .and_then(|i| usize::try_from(i).ok())
        .filter(|i| *i < count)
}

impl HostPrompt {
    /// The prompt a host call asks, `None` for calls that are not prompts
    /// (writes, RawUI...), an error when its parameters are malformed.
    pub fn from_call(call: &HostCall) -> Result<Option<Self>, MessageError> {
        Ok(Some(match call.method {
            HostMethodId::ReadLine => HostPrompt::ReadLine,
            HostMethodId::ReadLineAsSecureString => HostPrompt::ReadLineAsSecureString,
            HostMethodId::Prompt => {
                let fields = items(call, 2, "the field descriptions are not a list")?
                    .iter()
                    .map(|f| {
                        let p = Props::of(f, "FieldDescription")?;
                        let text = |n: &str| p.get(n).and_then(string_of).unwrap_or_default();
                        let full = text("parameterTypeFullName");
                        Ok(FieldDescription {
                            name: text("name"),
                            label: text("label"),
                            type_name: if full.is_empty() {
                                text("parameterTypeName")
                            } else {
                                full
                            },
                            help_message: text("helpMessage"),
                        })
                    })
                    .collect::<Result<_, MessageError>>()?;
                HostPrompt::Fields {
                    caption: text_param(call, 0),
                    message: text_param(call, 1),
                    fields,
                }
            }
            HostMethodId::PromptForCredential1 | HostMethodId::PromptForCredential2 => {
                HostPrompt::Credential {
                    caption: text_param(call, 0),
                    message: text_param(call, 1),
                    user_name: text_param(call, 2),
                    target_name: text_param(call, 3),
                }
            }
            HostMethodId::PromptForChoice => {
                let choices = choices(call)?;
                let default = call
                    .parameters
                    .get(3)
                    .and_then(|d| index_in(d, choices.len()));
                HostPrompt::Choice {
                    caption: text_param(call, 0),
                    message: text_param(call, 1),
                    choices,
                    default,
                }
            }
            HostMethodId::PromptForChoiceMultipleSelection => {
                let choices = choices(call)?;
                let defaults = items(call, 3, "the default choices are not a list")?
                    .iter()
                    .filter_map(|d| index_in(d, choices.len()))
                    .collect();
                HostPrompt::MultipleChoice {
                    caption: text_param(call, 0),
                    message: text_param(call, 1),
                    choices,
                    defaults,
                }
            }
            _ => return Ok(None),
        }))
    }

    /// What is asked, for messages: `Read-Host`, `Get-Credential`...
    pub fn kind(&self) -> &'static str {
        match self {
            HostPrompt::ReadLine => "a line (Read-Host)",
            HostPrompt::ReadLineAsSecureString => "a secret line (Read-Host -AsSecureString)",
            HostPrompt::Fields { .. } => "input fields (Read-Host -Prompt, a mandatory parameter)",
            HostPrompt::Credential { .. } => "a credential (Get-Credential)",
            HostPrompt::Choice { .. } => "a choice (PromptForChoice, -Confirm)",
            HostPrompt::MultipleChoice { .. } => "choices (PromptForChoice, multiple selection)",
        }
    }

    /// The value to return to the server for `answer`. SecureStrings in it
    /// are still to be sealed with the session key (the async client does
    /// it before sending).
    pub fn answer_value(&self, answer: HostAnswer) -> Result<PsValue, AnswerError> {
        let count = |choices: &[ChoiceDescription], index: usize| {
            if index < choices.len() {
                Ok(())
            } else {
                Err(AnswerError::NoSuchChoice {
                    index,
                    count: choices.len(),
                })
            }
        };
        match (self, answer) {
            (HostPrompt::ReadLine, HostAnswer::Line(s)) => Ok(PsValue::from(s)),
            (HostPrompt::ReadLineAsSecureString, HostAnswer::Secure(s)) => Ok(PsValue::from(s)),
            (HostPrompt::Fields { .. }, HostAnswer::Fields(values)) => Ok(hashtable(
                values
                    .into_iter()
                    .map(|(k, v)| (PsValue::from(k), v))
                    .collect(),
            )),
            (
                HostPrompt::Credential { .. },
                HostAnswer::Credential {
                    user_name,
                    password,
                },
            ) => Ok(credential_value(&user_name, password)),
            (HostPrompt::Choice { choices, .. }, HostAnswer::Choice(i)) => {
                count(choices, i)?;
                Ok(PsValue::I32(i32::try_from(i).unwrap_or(i32::MAX)))
            }
            (HostPrompt::MultipleChoice { choices, .. }, HostAnswer::Choices(list)) => {
                for i in &list {
                    count(choices, *i)?;
                }
                Ok(ObjBuilder::with_types(&[
                    "System.Collections.ObjectModel.Collection`1[[System.Int32, mscorlib, \
                     Version=4.0.0.0, Culture=neutral, PublicKeyToken=b77a5c561934e089]]",
                    "System.Object",
                ])
                .list(
                    list.into_iter()
                        .map(|i| PsValue::I32(i32::try_from(i).unwrap_or(i32::MAX)))
                        .collect(),
                )
                .build())
            }
            (prompt, answer) => Err(AnswerError::WrongKind {
                prompt: prompt.kind(),
                given: match answer {
                    HostAnswer::Line(_) => "text",
                    HostAnswer::Secure(_) => "secret",
                    HostAnswer::Fields(_) => "fields",
                    HostAnswer::Credential { .. } => "credential",
                    HostAnswer::Choice(_) => "choice",
                    HostAnswer::Choices(_) => "multiple-choice",
                },
            }),
        }
    }
}

impl HostPrompt {
    /// The choice `text` names: an index (`0`), a label with or without
    /// its `&` (`Yes`, `yes to all`), or a hot key (`Y`), case-insensitive;
    /// the default choice for an empty text.
    pub fn choice_by_text(
        choices: &[ChoiceDescription],
        default: Option<usize>,
        text: &str,
    ) -> Option<usize> {
        let text = text.trim();
        if text.is_empty() {
            return default;
        }
        if let Ok(i) = text.parse::<usize>() {
            return (i < choices.len()).then_some(i);
        }
        choices
            .iter()
            .position(|c| c.text().eq_ignore_ascii_case(text) || c.label.eq_ignore_ascii_case(text))
            .or_else(|| {
                let mut chars = text.chars();
                let (Some(key), None) = (chars.next(), chars.next()) else {
                    return None;
                };
                choices.iter().position(|c| {
                    c.hot_key()
                        .is_some_and(|k| k.to_lowercase().eq(key.to_lowercase()))
                })
            })
    }
}

/// Reads a Prompt answer back (for servers and tests): the dictionary's
/// entries by key text.
pub fn fields_of(value: &PsValue) -> Option<Vec<(String, PsValue)>> {
    Some(
        dict_entries(value)?
            .iter()
            .map(|(k, v)| (string_of(k).unwrap_or_default(), v.clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostCall;

    fn choice_call(default: i32) -> HostCall {
        let choice = |label: &str| {
            ObjBuilder::new()
                .note("label", label)
                .note("helpMessage", "")
                .build()
        };
        HostCall {
            call_id: 4,
            method: HostMethodId::PromptForChoice,
            parameters: vec![
                PsValue::from("Confirm"),
                PsValue::from("Are you sure?"),
                crate::message::values::array_list(vec![
                    choice("&Yes"),
                    choice("Yes to &All"),
                    choice("&No"),
                ]),
                PsValue::I32(default),
            ],
        }
    }

    #[test]
    fn choices_by_index_label_and_hot_key() {
        let prompt = HostPrompt::from_call(&choice_call(2)).unwrap().unwrap();
        let HostPrompt::Choice {
            choices, default, ..
        } = &prompt
        else {
            panic!("{prompt:?}")
        };
        assert_eq!(*default, Some(2));
        let pick = |t| HostPrompt::choice_by_text(choices, *default, t);
        assert_eq!(pick("1"), Some(1));
        assert_eq!(pick("yes to all"), Some(1));
        assert_eq!(pick("Yes"), Some(0));
        assert_eq!(pick("a"), Some(1));
        assert_eq!(pick(""), Some(2));
        assert_eq!(pick("3"), None);
        assert_eq!(pick("maybe"), None);
        assert_eq!(
            prompt.answer_value(HostAnswer::Choice(1)).unwrap(),
            PsValue::I32(1)
        );
        assert_eq!(
            prompt.answer_value(HostAnswer::Choice(3)),
            Err(AnswerError::NoSuchChoice { index: 3, count: 3 })
        );
        assert!(matches!(
            prompt.answer_value(HostAnswer::Line("x".into())),
            Err(AnswerError::WrongKind { .. })
        ));
        // No default: -1 on the wire.
        let none = HostPrompt::from_call(&choice_call(-1)).unwrap().unwrap();
        assert!(matches!(none, HostPrompt::Choice { default: None, .. }));
    }

    #[test]
    fn credential_answer_is_a_pscredential_and_hides_its_secret() {
        let prompt = HostPrompt::Credential {
            caption: String::new(),
            message: String::new(),
            user_name: String::new(),
            target_name: String::new(),
        };
        let answer = HostAnswer::Credential {
            user_name: "PEER\\alice".into(),
            password: SecureString::new("hunter2"),
        };
        assert!(!format!("{answer:?}").contains("hunter2"));
        let value = prompt.answer_value(answer).unwrap();
        let obj = value.as_object().unwrap();
        assert_eq!(
            obj.type_names.as_ref().map(|t| t.names()[0].as_str()),
            Some(CREDENTIAL_TYPE)
        );
        assert_eq!(
            obj.property("UserName").and_then(PsValue::as_str),
            Some("PEER\\alice")
        );
        assert!(matches!(
            obj.property("Password"),
            Some(PsValue::SecureString(_))
        ));
    }

    #[test]
    fn non_prompt_calls_are_not_prompts() {
        let call = HostCall {
            call_id: -100,
            method: HostMethodId::WriteLine2,
            parameters: vec![PsValue::from("x")],
        };
        assert_eq!(HostPrompt::from_call(&call).unwrap(), None);
    }
}
