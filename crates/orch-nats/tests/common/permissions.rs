//! A nats-server configuration with per-user permissions (the one the crate docs give),
//! and the credentials of its users.

use orch_nats::{Auth, NatsConfig};

use super::NatsServer;

/// Users `coordinator`, `embedder` (serves task type `embed`) and `parser` (serves
/// `parse`), each with only the permissions its role needs.
pub const SERVER_CONFIG: &str = r#"
authorization {
  users: [
    { user: coordinator, password: "coordinator-pw",
      permissions: {
        publish: ["orch.>", "$JS.API.>", "$JS.FC.>"],
        subscribe: ["orch.>", "_INBOX.>", "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORCH_TASKS.*"] } },
    { user: embedder, password: "embedder-pw",
      permissions: {
        publish: ["orch.result.>", "$JS.ACK.ORCH_TASKS.embed.>",
                  "$JS.API.CONSUMER.MSG.NEXT.ORCH_TASKS.embed", "$JS.API.CONSUMER.INFO.ORCH_TASKS.embed",
                  "$JS.API.CONSUMER.CREATE.ORCH_TASKS.embed.orch.task.embed",
                  "$JS.API.STREAM.INFO.ORCH_TASKS", "$JS.API.STREAM.INFO.ORCH_RESULTS",
                  "$JS.API.STREAM.MSG.GET.ORCH_RESULTS",
                  "$JS.API.STREAM.INFO.ORCH_CANCELS", "$JS.API.CONSUMER.CREATE.ORCH_CANCELS",
                  "$JS.API.CONSUMER.CREATE.ORCH_CANCELS.>", "$JS.API.CONSUMER.DELETE.ORCH_CANCELS.>",
                  "$JS.FC.ORCH_CANCELS.>"],
        subscribe: ["_INBOX.>", "orch.cancel.*", "orch.worker.embed"],
        allow_responses: true } },
    { user: parser, password: "parser-pw",
      permissions: {
        publish: ["orch.result.>", "$JS.ACK.ORCH_TASKS.parse.>",
                  "$JS.API.CONSUMER.MSG.NEXT.ORCH_TASKS.parse", "$JS.API.CONSUMER.INFO.ORCH_TASKS.parse",
                  "$JS.API.CONSUMER.CREATE.ORCH_TASKS.parse.orch.task.parse",
                  "$JS.API.STREAM.INFO.ORCH_TASKS", "$JS.API.STREAM.INFO.ORCH_RESULTS",
                  "$JS.API.STREAM.MSG.GET.ORCH_RESULTS",
                  "$JS.API.STREAM.INFO.ORCH_CANCELS", "$JS.API.CONSUMER.CREATE.ORCH_CANCELS",
                  "$JS.API.CONSUMER.CREATE.ORCH_CANCELS.>", "$JS.API.CONSUMER.DELETE.ORCH_CANCELS.>",
                  "$JS.FC.ORCH_CANCELS.>"],
        subscribe: ["_INBOX.>", "orch.cancel.*", "orch.worker.parse"],
        allow_responses: true } },
    { user: mute, password: "mute-pw",
      permissions: {
        publish: ["$JS.ACK.ORCH_TASKS.embed.>",
                  "$JS.API.CONSUMER.MSG.NEXT.ORCH_TASKS.embed", "$JS.API.CONSUMER.INFO.ORCH_TASKS.embed",
                  "$JS.API.CONSUMER.CREATE.ORCH_TASKS.embed.orch.task.embed",
                  "$JS.API.STREAM.INFO.ORCH_TASKS", "$JS.API.STREAM.INFO.ORCH_RESULTS",
                  "$JS.API.STREAM.MSG.GET.ORCH_RESULTS",
                  "$JS.API.STREAM.INFO.ORCH_CANCELS", "$JS.API.CONSUMER.CREATE.ORCH_CANCELS",
                  "$JS.API.CONSUMER.CREATE.ORCH_CANCELS.>", "$JS.API.CONSUMER.DELETE.ORCH_CANCELS.>",
                  "$JS.FC.ORCH_CANCELS.>"],
        subscribe: ["_INBOX.>", "orch.cancel.*", "orch.worker.embed"],
        allow_responses: true } }
  ]
}
"#;

pub fn as_user(server: &NatsServer, user: &str, password: &str) -> NatsConfig {
    server.config().auth(Auth::user_password(user, password))
}
