//! An answered call: its dialog, the states it goes through (the
//! caller's ACK, its BYE), our answer and our BYE.

use std::net::SocketAddr;

use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::Header;
use rsipstack::transaction::transaction::Transaction;
use tracing::warn;

use super::sdp;
use crate::media::phone::PhoneLeg;

/// An answered call's dialog and the states it goes through.
pub(super) struct Answered {
    pub(super) dialog: InviteDialog,
    pub(super) states: DialogStateReceiver,
    /// The caller acknowledged the answer (ACK).
    pub(super) confirmed: bool,
}

/// Answers the INVITE with our SDP; the dialog's requests are handled
/// from now on by its own task.
pub(super) fn answer(
    mut tx: Transaction,
    dialogs: &DialogLayer,
    contact: rsipstack::sip::Uri,
    leg: &PhoneLeg,
    local: SocketAddr,
) -> Option<Answered> {
    let (state_tx, states) = dialogs.new_dialog_state_channel();
    let dialog = match dialogs.get_or_create_server_invite(&tx, state_tx, None, Some(contact)) {
        Ok(d) => d,
        Err(e) => {
            warn!("creating the dialog: {e}");
            return None;
        }
    };
    let mut handling = dialog.clone();
    tokio::spawn(async move {
        let _ = handling.handle(&mut tx).await;
    });
    let body = sdp::answer(leg, local, u64::from(glib::random_int()));
    let headers = vec![Header::ContentType("application/sdp".into())];
    if let Err(e) = dialog.accept(Some(headers), Some(body.into_bytes())) {
        warn!("answering: {e}");
        dialogs.remove_dialog(&dialog.id());
        return None;
    }
    Some(Answered {
        dialog,
        states,
        confirmed: false,
    })
}

/// Sends BYE once the caller has acknowledged our answer (RFC 3261
/// §15: not before its ACK), waiting no longer than shutdown allows.
pub(super) async fn bye(answered: &mut Answered) {
    let acked = answered.confirmed
        || tokio::time::timeout(super::BYE_WAIT, async {
            while let Some(state) = answered.states.recv().await {
                match state {
                    DialogState::Confirmed(..) => return true,
                    DialogState::Terminated(..) => return false,
                    _ => {}
                }
            }
            false
        })
        .await
        .unwrap_or(false);
    if !acked {
        warn!("the caller never acknowledged the answer: no BYE");
        return;
    }
    answered.confirmed = true;
    match tokio::time::timeout(super::BYE_WAIT, answered.dialog.bye()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("BYE: {e}"),
        Err(_) => warn!("the caller did not answer BYE in time"),
    }
}
