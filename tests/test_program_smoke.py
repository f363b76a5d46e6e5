from tests.helpers.factories import base_raw, plan


def test_program_plans_twice_in_one_process_with_distinct_graphs():
    one = plan(base_raw())
    two = plan(base_raw(tenants=[]))
    assert any(r.type == "weebo:tenants:TenantCluster" for r in one.registrations)
    assert not any(r.type == "weebo:tenants:TenantCluster" for r in two.registrations)
