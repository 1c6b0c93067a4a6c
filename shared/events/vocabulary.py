"""The words events use: platforms, categories, and the DSA statement-of-reasons vocabulary."""

from enum import StrEnum

class Platform(StrEnum):
    facebook = "facebook"
    instagram = "instagram"
    youtube = "youtube"
    x = "x"
    tiktok = "tiktok"
    telegram = "telegram"
    other = "other"


class Category(StrEnum):
    people_smuggling = "people_smuggling"
    human_trafficking = "human_trafficking"
    terrorism = "terrorism"
    violent_extremism = "violent_extremism"
    fraud = "fraud"
    illegal_goods = "illegal_goods"
    other = "other"


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Outcome(StrEnum):
    """The summary of a decision, for counting: derived from the DSA fields."""

    removed = "removed"
    restricted = "restricted"
    rejected = "rejected"


class Visibility(StrEnum):
    """DSA statement of reasons: restrictions of the visibility of content."""

    content_removed = "content_removed"
    content_disabled = "content_disabled"
    content_demoted = "content_demoted"
    content_age_restricted = "content_age_restricted"
    content_interaction_restricted = "content_interaction_restricted"
    content_labelled = "content_labelled"


class AccountAction(StrEnum):
    """DSA statement of reasons: suspension or termination of the account."""

    account_suspended = "account_suspended"
    account_terminated = "account_terminated"


class Ground(StrEnum):
    """DSA statement of reasons: the ground the platform decided on."""

    illegal_content = "illegal_content"
    incompatible_with_terms = "incompatible_with_terms"


class NoActionReason(StrEnum):
    """Why a platform did not act: the structured reasons the DSA schema lacks."""

    no_violation = "no_violation"  # terms and conditions not breached
    insufficient_information = "insufficient_information"
    content_not_found = "content_not_found"
    already_removed = "already_removed"
    out_of_scope = "out_of_scope"
    duplicate = "duplicate"


REMOVING = {Visibility.content_removed, Visibility.content_disabled}


def summarise(visibility: tuple[Visibility, ...] | list[Visibility], account: AccountAction | None,
              no_action_reason: NoActionReason | None) -> Outcome:
    """removed if the content or account is gone, restricted if limited, rejected otherwise."""
    if no_action_reason is not None or not (visibility or account):
        return Outcome.rejected
    if REMOVING & set(visibility) or account is not None:
        return Outcome.removed
    return Outcome.restricted
