-- A number's own bot (WhatsApp API `phone_numbers/{id}/link-bot`, HydraCore instances): its
-- conversations start with `bot_config_id` whatever the organization's active config and
-- bot switch say. `ai_autoreply` off keeps the bot away from that number's conversations
-- (`phone_numbers/{id}/autoreply`), even when the organization's bot is on.

ALTER TABLE whatsapp_accounts
    ADD COLUMN bot_config_id uuid REFERENCES bot_configs (id) ON DELETE SET NULL,
    ADD COLUMN ai_autoreply boolean NOT NULL DEFAULT true;
