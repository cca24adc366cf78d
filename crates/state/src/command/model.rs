//! Read helpers for the command records (their encodings live in
//! `chipledger_types::command_tx`, shared with devices, the node and the CLI).

use chipledger_types::command_tx::{
    AuthorizationRecord, CommandRecord, DeviceCommands, authz_key, command_key, device_commands_key,
};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::merkle::Hash;
use chipledger_types::tx::TxHash;

use crate::error::TxError;
use crate::model::read;
use crate::store::StateRead;

/// The authorization made by transaction `id`.
pub fn get_authorization(s: &dyn StateRead, id: &TxHash) -> Result<Option<AuthorizationRecord>, TxError> {
    read(s, &authz_key(id))
}

/// The command with this request hash.
pub fn get_command(s: &dyn StateRead, request_hash: &Hash) -> Result<Option<CommandRecord>, TxError> {
    read(s, &command_key(request_hash))
}

/// A device's command totals and pending commands (empty when it has none).
pub fn device_commands(s: &dyn StateRead, device: &DeviceId) -> Result<DeviceCommands, TxError> {
    Ok(read(s, &device_commands_key(device))?.unwrap_or_default())
}
