"""Shared vocabularies: pathways, art forms, sex and ethnicity groups, referrer types.

Each is an enum whose value is stored and whose `label` is shown.
"""

from __future__ import annotations

import enum

from wtforms.fields.choices import SelectChoice


class LabelledEnum(enum.StrEnum):
    """A string enum with a human label: `Member("value", "Label")`."""

    _label: str

    def __new__(cls, value: str, label: str = "") -> LabelledEnum:
        member = str.__new__(cls, value)
        member._value_ = value
        member._label = label or value.replace("_", " ").capitalize()
        return member

    @property
    def label(self) -> str:
        return self._label

    @classmethod
    def choices(cls) -> list[SelectChoice]:
        return [SelectChoice(m.value, m.label) for m in cls]


class Pathway(LabelledEnum):
    MENTAL_HEALTH = "mental_health", "Mental health"
    COPD_ASTHMA = "copd_asthma", "COPD or asthma"
    DEMENTIA = "dementia", "Dementia"
    DIABETES = "diabetes", "Diabetes"
    CHRONIC_PAIN = "chronic_pain", "Chronic pain"
    CANCER = "cancer", "Cancer"
    SOCIAL_ISOLATION = "social_isolation", "Social isolation"
    YOUNG_PEOPLES_MENTAL_HEALTH = "young_peoples_mental_health", "Young people's mental health"
    OTHER = "other", "Other"


class ArtForm(LabelledEnum):
    SINGING = "singing", "Singing"
    MUSIC = "music", "Music making"
    VISUAL_ART = "visual_art", "Painting and drawing"
    CRAFTS = "crafts", "Crafts and textiles"
    DANCE = "dance", "Dance and movement"
    DRAMA = "drama", "Drama"
    WRITING = "writing", "Creative writing"
    PHOTOGRAPHY = "photography", "Photography and film"
    HERITAGE = "heritage", "Museums and heritage"


class ProviderType(LabelledEnum):
    """What kind of organisation an arts provider is, as its public profile says."""

    CHARITY = "charity", "Charity"
    COMMUNITY_INTEREST_COMPANY = "community_interest_company", "Community interest company"
    SOCIAL_ENTERPRISE = "social_enterprise", "Social enterprise"
    MUSEUM_OR_VENUE = "museum_or_venue", "Museum, gallery or arts venue"
    ARTISTS = "artists", "Artist or group of artists"
    COMPANY = "company", "Company"
    PUBLIC_BODY = "public_body", "Council or other public body"


class Sex(LabelledEnum):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"
    NOT_STATED = "not_stated", "Not stated"


class Ethnicity(LabelledEnum):
    """The five ONS 2021 high-level ethnic groups, plus not stated."""

    ASIAN = "asian", "Asian, Asian British or Asian Welsh"
    BLACK = "black", "Black, Black British, Black Welsh, Caribbean or African"
    MIXED = "mixed", "Mixed or multiple ethnic groups"
    WHITE = "white", "White"
    OTHER = "other", "Other ethnic group"
    NOT_STATED = "not_stated", "Not stated"


class ReferrerType(LabelledEnum):
    GP = "gp", "GP"
    LINK_WORKER = "link_worker", "Social prescribing link worker"
    OTHER_HEALTH_PROFESSIONAL = "other_health_professional", "Other health professional"
    SELF = "self", "Self-referral"


class ContactMethod(LabelledEnum):
    PHONE = "phone", "Phone"
    EMAIL = "email", "Email"
    TEXT = "text", "Text message"
    LETTER = "letter", "Letter"
    IN_PERSON = "in_person", "In person"


class ContactOutcome(LabelledEnum):
    SPOKE = "spoke", "Spoke to them"
    LEFT_MESSAGE = "left_message", "Left a message"
    NO_ANSWER = "no_answer", "No answer"
    WRONG_NUMBER = "wrong_details", "Wrong number or address"
    REPLIED = "replied", "They replied"
