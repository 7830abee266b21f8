"""What the Breakwater sandbox adds to moto where moto falls short of the AWS API.

Each patch names the gap it fills. They are applied in the moto server process only (never in
the functions), so the functions' calls are exactly the ones they make against AWS.
"""
from moto.eks import models as eks


def _find_tagged(backend, resource_arn):
    """EKS TagResource / UntagResource / ListTagsForResource take cluster and node-group ARNs;
    moto 5.2 knows only clusters."""
    for cluster in backend.clusters.values():
        if cluster.arn == resource_arn:
            return cluster
        for nodegroup in cluster.nodegroups.values():
            if nodegroup.arn == resource_arn:
                return nodegroup
    return None


def _not_found(operation):
    return eks.ResourceNotFoundException(
        clusterName=None,
        nodegroupName=None,
        fargateProfileName=None,
        addonName=None,
        message=f"An error occurred (NotFoundException) when calling the {operation} operation: Resource was not found",
    )


def _tag_resource(self, resource_arn, tags):
    resource = _find_tagged(self, resource_arn)
    if resource is None:
        raise _not_found("TagResource")
    if resource.tags is None:
        resource.tags = {}
    resource.tags.update(tags)


def _untag_resource(self, resource_arn, tag_keys):
    resource = _find_tagged(self, resource_arn)
    if resource is None:
        raise _not_found("UntagResource")
    for key in tag_keys if isinstance(tag_keys, list) else [tag_keys]:
        (resource.tags or {}).pop(key, None)


def _list_tags_for_resource(self, resource_arn):
    resource = _find_tagged(self, resource_arn)
    if resource is None:
        raise _not_found("ListTagsForResource")
    return resource.tags or {}


def apply():
    eks.EKSBackend.tag_resource = _tag_resource
    eks.EKSBackend.untag_resource = _untag_resource
    eks.EKSBackend.list_tags_for_resource = _list_tags_for_resource
