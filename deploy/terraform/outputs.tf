output "ecs_cluster_name" {
  description = "ECS cluster of the service."
  value       = aws_ecs_cluster.tracktrace_cluster.name
}

output "ecs_service_name" {
  description = "ECS service (blue/green through CodeDeploy)."
  value       = aws_ecs_service.tracktrace_api.name
}

output "task_definition_family" {
  description = "Task definition family; register a revision per release and hand it to CodeDeploy."
  value       = aws_ecs_task_definition.tracktrace_api.family
}

output "codedeploy_app_name" {
  description = "CodeDeploy application."
  value       = aws_codedeploy_app.tracktrace.name
}

output "codedeploy_deployment_group_name" {
  description = "CodeDeploy deployment group."
  value       = aws_codedeploy_deployment_group.tracktrace_api.deployment_group_name
}

output "load_balancer_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.tracktrace.dns_name
}

output "eventstore_endpoint" {
  description = "Writer endpoint of the event store cluster."
  value       = aws_rds_cluster.eventstore.endpoint
}

output "eventstore_reader_endpoint" {
  description = "Reader endpoint of the event store cluster."
  value       = aws_rds_cluster.eventstore.reader_endpoint
}

output "kafka_bootstrap_brokers_sasl_iam" {
  description = "MSK bootstrap brokers for IAM authentication (TLS, SASL AWS_MSK_IAM, port 9098): Kafka__BootstrapServers with Kafka__Security__TLS__Enabled=true and Kafka__Security__SASL__Mechanism=AWS_MSK_IAM."
  value       = aws_msk_cluster.kafka.bootstrap_brokers_sasl_iam
}

output "task_role_arn" {
  description = "IAM task role: the identity the service signs in to MSK with."
  value       = aws_iam_role.task.arn
}

output "redis_primary_endpoint" {
  description = "Redis primary endpoint (TLS, AUTH)."
  value       = aws_elasticache_replication_group.redis.primary_endpoint_address
}

output "eventstore_connection_secret_arn" {
  description = "Secrets Manager secret holding ConnectionStrings__EventStore."
  value       = aws_secretsmanager_secret.eventstore_connection.arn
}

output "redis_connection_secret_arn" {
  description = "Secrets Manager secret holding ConnectionStrings__Redis."
  value       = aws_secretsmanager_secret.redis_connection.arn
}

output "task_execution_role_arn" {
  description = "IAM task execution role."
  value       = aws_iam_role.task_execution.arn
}
