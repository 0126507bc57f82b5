# Customer-managed keys. Without an explicit key policy the account root is
# the key's administrator and IAM policies grant its use (see iam.tf).

resource "aws_kms_key" "eventstore" {
  description             = "tracktrace event store (Aurora PostgreSQL) encryption at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
}

resource "aws_kms_alias" "eventstore" {
  name          = "alias/${var.name_prefix}-eventstore"
  target_key_id = aws_kms_key.eventstore.key_id
}

resource "aws_kms_key" "platform" {
  description             = "tracktrace Kafka, Redis and Secrets Manager encryption at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
}

resource "aws_kms_alias" "platform" {
  name          = "alias/${var.name_prefix}-platform"
  target_key_id = aws_kms_key.platform.key_id
}
