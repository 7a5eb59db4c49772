"""The parts of a Change Data Capture message Concord reads, as a CometD bridge delivers it.

``{"channel": "/data/AccountChangeEvent", "data": {"schema": "…", "payload": {…record
fields…, "ChangeEventHeader": {…}}, "event": {"replayId": 12}}}``. Extra fields are allowed
everywhere: orgs add custom fields and Salesforce adds header fields between API versions.

Record fields are typed per object (all optional: an UPDATE carries only what changed) so a
value of the wrong type is refused naming its field (``body.0.data.payload.Amount``) before
anything is stored. Compound fields (``BillingAddress``) are read flattened
(``BillingAddress.City``), the way ``changedFields`` names them.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ChangeType = Literal[
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class ChangeEventHeader(_Open):
    entity_name: str = Field(min_length=1, max_length=255, alias="entityName")
    change_type: ChangeType = Field(alias="changeType")
    changed_fields: list[str] = Field(default_factory=list, alias="changedFields")
    nulled_fields: list[str] = Field(default_factory=list, alias="nulledFields")
    diff_fields: list[str] = Field(default_factory=list, alias="diffFields")
    record_ids: list[str] = Field(default_factory=list, max_length=10_000, alias="recordIds")
    commit_timestamp: int = Field(ge=0, alias="commitTimestamp")
    transaction_key: str = Field(min_length=1, max_length=255, alias="transactionKey")
    sequence_number: int = Field(ge=0, alias="sequenceNumber")
    commit_number: int | None = Field(None, alias="commitNumber")
    commit_user: str | None = Field(None, alias="commitUser")
    change_origin: str | None = Field(None, alias="changeOrigin")


class ReplayEvent(_Open):
    replay_id: int = Field(alias="replayId")


class Payload(_Open):
    header: ChangeEventHeader = Field(alias="ChangeEventHeader")


class EventData(_Open):
    schema_id: str | None = Field(default=None, alias="schema")
    payload: Payload
    event: ReplayEvent


class CdcMessage(_Open):
    channel: str = Field(min_length=1, max_length=255)
    data: EventData


# -- record fields, per object (all optional: UPDATE sends only the changed ones) ---------

Text = str | None


class AccountFields(_Open):
    Name: Text = None
    ParentId: Text = None
    Website: Text = None
    BillingStreet: Text = None
    BillingCity: Text = None
    BillingState: Text = None
    BillingStateCode: Text = None
    BillingPostalCode: Text = None
    BillingCountry: Text = None
    BillingCountryCode: Text = None


class AddressFields(_Open):
    """A compound address as CDC sends it (``BillingAddress: {Street, City, …}``)."""

    Street: Text = None
    City: Text = None
    State: Text = None
    StateCode: Text = None
    PostalCode: Text = None
    Country: Text = None
    CountryCode: Text = None


class OpportunityFields(_Open):
    AccountId: Text = None
    Name: Text = None
    StageName: Text = None
    CloseDate: date | None = None
    Amount: Decimal | None = None
    IsWon: bool | None = None
    IsClosed: bool | None = None
    CurrencyIsoCode: Text = None
    Term_Months__c: Decimal | None = None
    SBQQ__SubscriptionTerm__c: Decimal | None = None


class LineItemFields(_Open):
    OpportunityId: Text = None
    Product2Id: Text = None
    PricebookEntryId: Text = None
    ProductCode: Text = None
    Name: Text = None
    Description: Text = None
    Quantity: Decimal | None = None
    UnitPrice: Decimal | None = None
    TotalPrice: Decimal | None = None
    Discount: Decimal | None = None
    ServiceDate: date | None = None
    SortOrder: int | None = None
    SBQQ__ChargeType__c: Text = None


class Product2Fields(_Open):
    Name: Text = None
    ProductCode: Text = None
    StockKeepingUnit: Text = None
    IsActive: bool | None = None
    SBQQ__ChargeType__c: Text = None


class ContractFields(_Open):
    AccountId: Text = None
    Status: Text = None
    StartDate: date | None = None
    EndDate: date | None = None
    ContractTerm: int | None = None


FIELDS: dict[str, type[_Open]] = {
    "Account": AccountFields,
    "Opportunity": OpportunityFields,
    "OpportunityLineItem": LineItemFields,
    "Product2": Product2Fields,
    "Contract": ContractFields,
}
"""Objects Concord follows; any other ``entityName`` is answered 202, ignored."""

COMPOUND: dict[str, type[_Open]] = {
    "BillingAddress": AddressFields,
    "ShippingAddress": AddressFields,
}
