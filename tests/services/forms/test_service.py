"""The pure core of forms: field rules, the signed time token, traits and the events of a submission."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.forms.schemas import FormDefinition
from services.forms.service import (
    FORMS_SOURCE_ID,
    Refused,
    Submitted,
    anonymous_id_for,
    check_form_token,
    make_confirm_token,
    make_form_token,
    read_confirm_token,
    read_file_token,
    submission_events,
    traits_of,
    validate,
)
from shared.tokens import InvalidToken
from tests.services.forms.helpers import definition

KEY = "k" * 32
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FORM = uuid.UUID(int=7)
DEFINITION = FormDefinition.model_validate(definition())


def ok(**values: str) -> dict[str, str]:
    return {"email": "ann@acme.example", "consent": "yes"} | values


def test_a_complete_submission_has_no_errors_and_maps_standard_fields_to_traits() -> None:
    values, errors = validate(DEFINITION, ok(first_name=" Ann ", job_title="CTO", team="51+", code="ABC12"))
    assert errors == {}
    assert traits_of(DEFINITION, values) == {
        "email": "ann@acme.example", "firstName": "Ann", "title": "CTO", "team": "51+", "code": "ABC12",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"email": ""}, "email", "This field is required."),
        ({"email": "ann@"}, "email", "Please enter a valid email address."),
        ({"first_name": "x" * 41}, "first_name", "At most 40 characters."),
        ({"team": "500"}, "team", "Please choose one of the options."),
        ({"code": "abc12"}, "code", "Please match the requested format."),
        ({"consent": ""}, "consent", "Please tick the box to agree."),
    ],
)
def test_each_rule_names_its_field(values: dict[str, str], field: str, message: str) -> None:
    _, errors = validate(DEFINITION, ok(**values))
    assert errors == {field: message}


@given(st.text(min_size=41, max_size=80).filter(lambda s: len(s.strip()) > 40))
def test_any_value_over_the_max_length_is_refused(name: str) -> None:
    _, errors = validate(DEFINITION, ok(first_name=name))
    assert errors == {"first_name": "At most 40 characters."}


@given(st.floats(min_value=0, max_value=86_400 * 2))
def test_the_time_token_is_accepted_only_between_the_minimum_and_the_maximum_age(age: float) -> None:
    token = make_form_token(KEY, FORM, NOW)
    later = NOW + timedelta(seconds=age)
    if 3 <= age - 0.001 and age + 0.001 <= 3600:
        assert check_form_token(KEY, token, FORM, later, 3, 3600).issued_at == NOW
    elif age + 0.001 < 3 or age - 0.001 > 3600:
        with pytest.raises(Refused) as refused:
            check_form_token(KEY, token, FORM, later, 3, 3600)
        assert refused.value.status == 400 and refused.value.field == "fs_token"


def test_a_token_is_bound_to_its_form_its_key_and_its_purpose() -> None:
    token = make_form_token(KEY, FORM, NOW)
    later = NOW + timedelta(seconds=10)
    for args in ((KEY, token, uuid.UUID(int=8)), ("other", token, FORM), (KEY, token[:-1] + "A", FORM)):
        with pytest.raises(Refused):
            check_form_token(*args, later, 3, 3600)
    confirm = make_confirm_token(KEY, FORM)
    assert read_confirm_token(KEY, confirm) == FORM
    with pytest.raises(InvalidToken):
        read_file_token(KEY, confirm)  # a confirmation link is not a download link
    assert make_form_token(KEY, FORM, NOW) != token  # a fresh nonce each time


def test_the_anonymous_id_is_the_visitors_or_one_derived_from_the_address() -> None:
    assert anonymous_id_for("3f1c-aid", "Ann@x.example") == "3f1c-aid"
    derived = anonymous_id_for("<script>", "Ann@x.example")
    assert derived.startswith("form-") and derived == anonymous_id_for(None, "ann@x.example")


def test_a_submission_is_an_identify_then_a_form_submitted_keyed_by_the_visitor_with_stable_ids() -> None:
    s = Submitted(
        submission_id=uuid.UUID(int=1), form_id=FORM, form_name="Guide", form_version=2, source_id=FORMS_SOURCE_ID,
        anonymous_id="aid-1", traits={"email": "ann@x.example"}, utm={"utm_source": "ads", "utm_campaign": "q4"},
        ip="192.0.2.1", user_agent="UA", page_url="https://www.acme.example/pricing",
    )  # fmt: skip
    identify, track = submission_events(s, NOW)
    assert (identify.type, identify.traits, identify.lead_key) == ("identify", {"email": "ann@x.example"}, "aid-1")
    assert (track.event, track.lead_key) == ("Form Submitted", "aid-1")
    assert track.properties["form_id"] == str(FORM) and track.properties["utm_source"] == "ads"
    assert track.context["campaign"] == {"source": "ads", "name": "q4"}
    assert [e.event_id for e in submission_events(s, NOW + timedelta(seconds=5))] == [
        identify.event_id,
        track.event_id,
    ]


def test_a_definition_needs_one_required_email_and_safe_urls() -> None:
    with pytest.raises(ValueError, match="exactly one email"):
        FormDefinition.model_validate(definition(fields=[{"name": "name", "type": "text"}]))
    with pytest.raises(ValueError, match="absolute http"):
        FormDefinition.model_validate(definition(success_redirect="javascript:alert(1)"))
    with pytest.raises(ValueError, match="reserved"):
        FormDefinition.model_validate(definition(fields=[*definition()["fields"], {"name": "website", "type": "text"}]))
    with pytest.raises(ValueError, match="regular expression"):
        FormDefinition.model_validate(
            definition(fields=[*definition()["fields"], {"name": "x", "type": "text", "pattern": "("}])
        )
