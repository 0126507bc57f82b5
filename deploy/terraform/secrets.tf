# The connection strings the tasks read (ECS injects them as
# ConnectionStrings__EventStore and ConnectionStrings__Redis). Their values
# come from the sensitive variables, so they live in the Terraform state:
# keep the state encrypted and access-controlled.

locals {
  eventstore_connection = format(
    "postgres://%s:%s@%s:%d/%s?sslmode=require",
    aws_rds_cluster.eventstore.master_username,
    urlencode(var.db_password),
    aws_rds_cluster.eventstore.endpoint,
    aws_rds_cluster.eventstore.port,
    aws_rds_cluster.eventstore.database_name,
  )

  redis_connection = format(
    "rediss://:%s@%s:%d",
    urlencode(var.redis_auth_token),
    aws_elasticache_replication_group.redis.primary_endpoint_address,
    aws_elasticache_replication_group.redis.port,
  )
}

resource "aws_secretsmanager_secret" "eventstore_connection" {
  name                    = "${var.name_prefix}/eventstore-connection"
  description             = "tracktrace ConnectionStrings__EventStore"
  kms_key_id              = aws_kms_key.platform.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "eventstore_connection" {
  secret_id     = aws_secretsmanager_secret.eventstore_connection.id
  secret_string = local.eventstore_connection
}

resource "aws_secretsmanager_secret" "redis_connection" {
  name                    = "${var.name_prefix}/redis-connection"
  description             = "tracktrace ConnectionStrings__Redis"
  kms_key_id              = aws_kms_key.platform.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "redis_connection" {
  secret_id     = aws_secretsmanager_secret.redis_connection.id
  secret_string = local.redis_connection
}
