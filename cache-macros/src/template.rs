//! The grammar of `key = "user:{id}"`: literals and `{parameter}`s. Checking the template
//! against the function's parameters is [`crate::check`]'s job; this file only reads it.

/// A piece of a key template.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    Literal(String),
    Param(String),
}

/// `"user:{id}:{{tag}}"` into literals and parameters; `{{` and `}}` are literal braces.
pub(crate) fn parse(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(format!("`{{{name}` is not closed: write `{{{name}}}`"))
                        }
                    }
                }
                let name = name.trim().to_owned();
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(format!("`{{{name}}}` must name a parameter, as in `user:{{id}}` (write `{{{{` for a literal brace)"));
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Param(name));
            }
            '}' => return Err("a lone `}`: write `}}` for a literal brace".to_owned()),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    if pieces.is_empty() {
        return Err("the template is empty; write the key's name, as in `user:{id}`".to_owned());
    }
    Ok(pieces)
}

/// The literal parts around the parameters, one more than there are parameters: empty where
/// two parameters meet or at either end. This is the form the runtime's `Spec` takes.
pub(crate) fn literals(pieces: &[Piece]) -> Vec<String> {
    let mut literals = vec![String::new()];
    for piece in pieces {
        match piece {
            Piece::Literal(text) => {
                if let Some(last) = literals.last_mut() {
                    last.push_str(text);
                }
            }
            Piece::Param(_) => literals.push(String::new()),
        }
    }
    literals
}

#[cfg(test)]
mod tests {
    use super::{literals, parse, Piece};

    #[test]
    fn templates() {
        assert_eq!(
            parse("user:{id}:{{tag}}").unwrap(),
            vec![
                Piece::Literal("user:".into()),
                Piece::Param("id".into()),
                Piece::Literal(":{tag}".into())
            ]
        );
        assert_eq!(parse("{a}").unwrap(), vec![Piece::Param("a".into())]);
        for bad in ["", "user:{", "user:{}", "a}b", "{a b}", "{a-b}"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn literals_surround_parameters() {
        assert_eq!(literals(&parse("user:{id}").unwrap()), ["user:", ""]);
        assert_eq!(literals(&parse("{a}:{b}!").unwrap()), ["", ":", "!"]);
    }
}
