-- Campaign messages without a conversation (ARCHITECTURE.md "Campaigns", issue 18).
--
-- A campaign send used to create the recipient's contact and open conversation, or bump it,
-- before the customer had said anything: two more rows and ten index entries per message, a
-- third of the send path's database work. Now a campaign message is created with the
-- recipient's open conversation when there is one (the inbox shows it there, as before) and
-- without one otherwise. When the customer writes (or an agent starts a conversation with
-- them), the conversation is created as for any first message and takes the campaign messages
-- sent to that number from that account, so the thread shows what the customer answers.
ALTER TABLE messages ALTER COLUMN conversation_id DROP NOT NULL;

-- "Campaign messages sent to this number in this org": looked up when a conversation opens.
CREATE INDEX campaign_recipients_phone_idx ON campaign_recipients (org_id, phone)
    WHERE message_id IS NOT NULL;
