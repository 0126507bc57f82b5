variable "aws_region" {
  description = "AWS region."
  type        = string
  default     = "us-west-2"
}

variable "environment" {
  description = "Deployment environment name (tagging and resource names)."
  type        = string
  default     = "production"
}

variable "name_prefix" {
  description = "Prefix of resource names."
  type        = string
  default     = "tracktrace"
}

variable "availability_zones" {
  description = "Availability zones of the event store cluster (the seed's three, multi-AZ)."
  type        = list(string)
  default     = ["us-west-2a", "us-west-2b", "us-west-2c"]
}

variable "vpc_id" {
  description = "VPC that hosts tracktrace."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (one per availability zone) for tasks, databases, Kafka and Redis."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 3
    error_message = "Give at least three private subnets, one per availability zone (MSK needs one per broker AZ)."
  }
}

variable "alb_subnet_ids" {
  description = "Subnets of the load balancer: private ones for an internal ALB, public ones otherwise."
  type        = list(string)
}

variable "alb_internal" {
  description = "Whether the load balancer is internal (corporate network only)."
  type        = bool
  default     = true
}

variable "alb_ingress_cidrs" {
  description = "CIDR blocks allowed to reach the load balancer."
  type        = list(string)
  default     = ["10.0.0.0/8"]
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listeners."
  type        = string
}

variable "container_image" {
  description = "tracktrace image, built from deploy/Dockerfile; pin a version or digest."
  type        = string
  default     = "tlm/tracktrace-api:latest"
}

variable "task_cpu" {
  description = "Fargate task CPU units."
  type        = number
  default     = 512
}

variable "task_memory" {
  description = "Fargate task memory (MiB)."
  type        = number
  default     = 1024
}

variable "desired_count" {
  description = "Number of API tasks (the seed's 3; autoscaling goes up to max_count)."
  type        = number
  default     = 3
}

variable "max_count" {
  description = "Upper bound of API tasks under autoscaling."
  type        = number
  default     = 10
}

variable "authentication_authority" {
  description = "OIDC issuer (Authentication.Authority); Production refuses to start without one."
  type        = string
  default     = "https://identity.corporate.com"
}

variable "authentication_audience" {
  description = "Expected JWT audience (Authentication.Audience)."
  type        = string
  default     = "corporate-tracktrace-api"
}

variable "tracing_endpoint" {
  description = "OTLP/HTTP collector URL (Monitoring.Tracing.Endpoint); empty turns tracing off."
  type        = string
  default     = ""
}

variable "db_engine_version" {
  description = "Aurora PostgreSQL version. The seed pinned 13.7, which AWS no longer offers for new clusters (PostgreSQL 13 is past standard support); any 13+ works for tracktrace."
  type        = string
  default     = "16.6"
}

variable "db_instance_class" {
  description = "Aurora instance class."
  type        = string
  default     = "db.r6g.large"
}

variable "db_instance_count" {
  description = "Aurora instances (writer + readers); 2 or more for multi-AZ failover."
  type        = number
  default     = 2

  validation {
    condition     = var.db_instance_count >= 2
    error_message = "Use at least two instances so the cluster fails over across availability zones."
  }
}

variable "db_password" {
  description = "Master password of the event store cluster (never commit it; pass TF_VAR_db_password)."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.db_password) >= 16 && length(var.db_password) <= 128 && can(regex("^[A-Za-z0-9_.~!#$%^&*()+=-]+$", var.db_password))
    error_message = "16 to 128 characters; letters, digits and _.~!#$%^&*()+=- only (RDS forbids / @ \" and space)."
  }
}

variable "kafka_version" {
  description = "Apache Kafka version of the MSK cluster."
  type        = string
  default     = "3.6.0"
}

variable "kafka_instance_type" {
  description = "MSK broker instance type."
  type        = string
  default     = "kafka.m5.large"
}

variable "kafka_broker_count" {
  description = "MSK brokers (a multiple of the number of client subnets)."
  type        = number
  default     = 3
}

variable "kafka_volume_size" {
  description = "EBS storage per broker (GiB)."
  type        = number
  default     = 100
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.medium"
}

variable "redis_engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

variable "redis_auth_token" {
  description = "Redis AUTH token (transit encryption on); never commit it, pass TF_VAR_redis_auth_token."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.redis_auth_token) >= 16 && length(var.redis_auth_token) <= 128 && can(regex("^[A-Za-z0-9_.~!#$%^&*()+=-]+$", var.redis_auth_token))
    error_message = "16 to 128 characters; letters, digits and _.~!#$%^&*()+=- only (ElastiCache forbids / @ \" and space)."
  }
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention of the service's logs."
  type        = number
  default     = 30
}
