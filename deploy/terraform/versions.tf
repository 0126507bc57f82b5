terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }

  # Configure a remote state backend per environment, e.g.:
  # backend "s3" {
  #   bucket         = "tlm-terraform-state"
  #   key            = "corporate-services/tracktrace/terraform.tfstate"
  #   region         = "us-west-2"
  #   dynamodb_table = "terraform-locks"
  #   encrypt        = true
  # }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Service     = "tracktrace"
      System      = "corporate-services"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
