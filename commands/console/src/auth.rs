//! Who may use the console: PAM says whether the password is right (service
//! `/etc/pam.d/clever-console`), and only members of the cluster's administrators' group
//! (`haclient`, as pcsd) get in.

/// The seam between the web layer and the host's accounts: PAM in the binary, a table in tests.
pub trait Authenticator: Send + Sync + 'static {
    /// Blocking (PAM modules sleep after a failure); the server calls it off its async threads.
    fn authenticate(&self, user: &str, password: &str) -> Result<(), AuthError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("wrong user name or password")]
    Rejected,
    #[error("{user} is not a member of the {group} group")]
    NotInGroup { user: String, group: String },
    #[error("PAM failed: {0}")]
    Pam(String),
}

/// Names PAM and the account databases accept; anything else is refused before PAM sees it,
/// so no module ever gets a control character or a path in a user name.
pub fn plausible_user_name(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 64
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// PAM's verdict, then the group.
#[derive(Debug, Clone)]
pub struct PamAuthenticator {
    pub service: String,
    pub group: String,
}

impl Authenticator for PamAuthenticator {
    fn authenticate(&self, user: &str, password: &str) -> Result<(), AuthError> {
        if !plausible_user_name(user) {
            return Err(AuthError::Rejected);
        }
        let conversation = pam_client::conv_mock::Conversation::with_credentials(user, password);
        let mut context = pam_client::Context::new(&self.service, Some(user), conversation)
            .map_err(|e| AuthError::Pam(e.to_string()))?;
        context
            .authenticate(pam_client::Flag::DISALLOW_NULL_AUTHTOK)
            .map_err(|_| AuthError::Rejected)?;
        // An expired or locked account is refused here, as at a console login.
        context
            .acct_mgmt(pam_client::Flag::DISALLOW_NULL_AUTHTOK)
            .map_err(|_| AuthError::Rejected)?;
        // PAM may have mapped the name; the group is checked for the account it authenticated.
        let user = context.user().map_err(|e| AuthError::Pam(e.to_string()))?;
        member_of(&user, &self.group)
    }
}

/// Whether `user` is in `group`, as its primary group or as a listed member.
pub fn member_of(user: &str, group: &str) -> Result<(), AuthError> {
    let refused = || AuthError::NotInGroup {
        user: user.to_owned(),
        group: group.to_owned(),
    };
    let group_entry = nix::unistd::Group::from_name(group)
        .map_err(|e| AuthError::Pam(format!("cannot read group {group}: {e}")))?
        .ok_or_else(refused)?;
    if group_entry.mem.iter().any(|m| m == user) {
        return Ok(());
    }
    let user_entry = nix::unistd::User::from_name(user)
        .map_err(|e| AuthError::Pam(format!("cannot read user {user}: {e}")))?
        .ok_or_else(refused)?;
    if user_entry.gid == group_entry.gid {
        Ok(())
    } else {
        Err(refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_reach_pam() {
        for good in ["alice", "ha.admin", "op_1", "x-y"] {
            assert!(plausible_user_name(good), "{good}");
        }
        let long = "a".repeat(65);
        for bad in ["", "-n", "a b", "a\nb", "../etc", "ä", long.as_str()] {
            assert!(!plausible_user_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn root_is_in_its_own_group_and_not_in_a_missing_one() {
        assert_eq!(member_of("root", "root"), Ok(()));
        assert!(matches!(
            member_of("root", "no-such-group-here"),
            Err(AuthError::NotInGroup { .. })
        ));
    }
}
