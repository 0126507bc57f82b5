# Traffic: clients -> ALB (443, 80 redirect, 8443 blue/green test listener)
# -> tasks (8080) -> Aurora (5432), MSK (9098 TLS + IAM), Redis (6379 TLS).

resource "aws_security_group" "alb" {
  name        = "${var.name_prefix}-alb"
  description = "tracktrace load balancer"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from clients"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each          = toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from clients (redirected to HTTPS)"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_ingress_rule" "alb_test" {
  for_each          = toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "Blue/green test listener"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 8443
  to_port           = 8443
}

resource "aws_vpc_security_group_egress_rule" "alb_to_service" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the API tasks"
  referenced_security_group_id = aws_security_group.service.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
}

resource "aws_security_group" "service" {
  name        = "${var.name_prefix}-api"
  description = "tracktrace API tasks"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "service_from_alb" {
  security_group_id            = aws_security_group.service.id
  description                  = "HTTP from the load balancer"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
}

# Tasks reach the data stores below, the OIDC authority, ECR, Secrets
# Manager and CloudWatch Logs (HTTPS).
resource "aws_vpc_security_group_egress_rule" "service_all" {
  security_group_id = aws_security_group.service.id
  description       = "Outbound"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

resource "aws_security_group" "eventstore" {
  name        = "${var.name_prefix}-eventstore"
  description = "tracktrace event store (Aurora PostgreSQL)"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "eventstore_from_service" {
  security_group_id            = aws_security_group.eventstore.id
  description                  = "PostgreSQL from the API tasks"
  referenced_security_group_id = aws_security_group.service.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_security_group" "kafka" {
  name        = "${var.name_prefix}-kafka"
  description = "tracktrace MSK cluster"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "kafka_from_service" {
  security_group_id            = aws_security_group.kafka.id
  description                  = "Kafka over TLS with IAM authentication from the API tasks"
  referenced_security_group_id = aws_security_group.service.id
  ip_protocol                  = "tcp"
  from_port                    = 9098
  to_port                      = 9098
}

resource "aws_vpc_security_group_ingress_rule" "kafka_internal" {
  security_group_id            = aws_security_group.kafka.id
  description                  = "Broker to broker"
  referenced_security_group_id = aws_security_group.kafka.id
  ip_protocol                  = "-1"
}

resource "aws_vpc_security_group_egress_rule" "kafka_internal" {
  security_group_id            = aws_security_group.kafka.id
  description                  = "Broker to broker"
  referenced_security_group_id = aws_security_group.kafka.id
  ip_protocol                  = "-1"
}

resource "aws_security_group" "redis" {
  name        = "${var.name_prefix}-redis"
  description = "tracktrace ElastiCache Redis"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_service" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis over TLS from the API tasks"
  referenced_security_group_id = aws_security_group.service.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}
