# pragma version ~=0.4.3
"""
@title Aave v3 Pool subset for tests
@notice Mainnet reads, same selectors and encodings: `getUserAccountData(address)` (six
    uint256), `getReservesList()`, `getReserveData(address)` (the `ReserveDataLegacy` tuple of
    v3.2+, deprecated fields zero), `getReserveNormalizedIncome(address)` and
    `getReserveNormalizedVariableDebt(address)`, `ADDRESSES_PROVIDER()`,
    `getUserConfiguration(address)` (the `UserConfigurationMap` bitmap: bit `2 * id` borrowing,
    bit `2 * id + 1` collateral, `id` the reserve's in `getReserveData`), and the user's own
    `setUserUseReserveAsCollateral(address,bool)` (unguarded: no health check). Indexes,
    account data and the addresses provider are set by test helpers; nothing accrues by itself.
"""

RAY: constant(uint256) = 10**27
MAX_RESERVES: constant(uint256) = 128


struct ReserveConfigurationMap:
    data: uint256


struct ReserveDataLegacy:
    configuration: ReserveConfigurationMap
    liquidityIndex: uint128
    currentLiquidityRate: uint128
    variableBorrowIndex: uint128
    currentVariableBorrowRate: uint128
    currentStableBorrowRate: uint128
    lastUpdateTimestamp: uint40
    id: uint16
    aTokenAddress: address
    stableDebtTokenAddress: address
    variableDebtTokenAddress: address
    interestRateStrategyAddress: address
    accruedToTreasury: uint128
    unbacked: uint128
    isolationModeTotalDebt: uint128


struct UserConfigurationMap:
    data: uint256


struct AccountData:
    totalCollateralBase: uint256
    totalDebtBase: uint256
    availableBorrowsBase: uint256
    currentLiquidationThreshold: uint256
    ltv: uint256
    healthFactor: uint256


reserves: DynArray[address, MAX_RESERVES]
reserve_data: HashMap[address, ReserveDataLegacy]
accounts: HashMap[address, AccountData]
user_configuration: HashMap[address, uint256]
addresses_provider: address


@view
@external
def ADDRESSES_PROVIDER() -> address:
    return self.addresses_provider


@external
def set_addresses_provider(provider: address):
    """@notice Test helper: the market's PoolAddressesProvider."""
    self.addresses_provider = provider


@view
@external
def getUserAccountData(user: address) -> (uint256, uint256, uint256, uint256, uint256, uint256):
    data: AccountData = self.accounts[user]
    health_factor: uint256 = data.healthFactor
    if data.totalDebtBase == 0:
        health_factor = max_value(uint256)
    return (
        data.totalCollateralBase,
        data.totalDebtBase,
        data.availableBorrowsBase,
        data.currentLiquidationThreshold,
        data.ltv,
        health_factor,
    )


@view
@external
def getUserConfiguration(user: address) -> UserConfigurationMap:
    return UserConfigurationMap(data=self.user_configuration[user])


@external
def setUserUseReserveAsCollateral(asset: address, useAsCollateral: bool):
    assert self.reserve_data[asset].aTokenAddress != empty(address), "reserve not listed"
    bit: uint256 = 1 << (2 * convert(self.reserve_data[asset].id, uint256) + 1)
    if useAsCollateral:
        self.user_configuration[msg.sender] |= bit
    else:
        self.user_configuration[msg.sender] &= ~bit


@view
@external
def getReservesList() -> DynArray[address, MAX_RESERVES]:
    return self.reserves


@view
@external
def getReserveData(asset: address) -> ReserveDataLegacy:
    return self.reserve_data[asset]


@view
@external
def getReserveNormalizedIncome(asset: address) -> uint256:
    return convert(self.reserve_data[asset].liquidityIndex, uint256)


@view
@external
def getReserveNormalizedVariableDebt(asset: address) -> uint256:
    return convert(self.reserve_data[asset].variableBorrowIndex, uint256)


@external
def init_reserve(asset: address, a_token: address, variable_debt_token: address):
    """@notice Test helper: list `asset` with its tokens, both indexes at one ray."""
    assert self.reserve_data[asset].aTokenAddress == empty(address), "reserve already listed"
    self.reserve_data[asset] = ReserveDataLegacy(
        configuration=ReserveConfigurationMap(data=0),
        liquidityIndex=convert(RAY, uint128),
        currentLiquidityRate=0,
        variableBorrowIndex=convert(RAY, uint128),
        currentVariableBorrowRate=0,
        currentStableBorrowRate=0,
        lastUpdateTimestamp=convert(block.timestamp, uint40),
        id=convert(len(self.reserves), uint16),
        aTokenAddress=a_token,
        stableDebtTokenAddress=empty(address),
        variableDebtTokenAddress=variable_debt_token,
        interestRateStrategyAddress=empty(address),
        accruedToTreasury=0,
        unbacked=0,
        isolationModeTotalDebt=0,
    )
    self.reserves.append(asset)


@external
def set_indexes(asset: address, liquidity_index: uint128, variable_borrow_index: uint128):
    """@notice Test helper: the reserve's indexes (ray), as if interest had accrued."""
    self.reserve_data[asset].liquidityIndex = liquidity_index
    self.reserve_data[asset].variableBorrowIndex = variable_borrow_index
    self.reserve_data[asset].lastUpdateTimestamp = convert(block.timestamp, uint40)


@external
def set_user_account_data(
    user: address,
    total_collateral_base: uint256,
    total_debt_base: uint256,
    available_borrows_base: uint256,
    current_liquidation_threshold: uint256,
    ltv: uint256,
    health_factor: uint256,
):
    """@notice Test helper: what `getUserAccountData(user)` answers (base currency: 8 dp)."""
    self.accounts[user] = AccountData(
        totalCollateralBase=total_collateral_base,
        totalDebtBase=total_debt_base,
        availableBorrowsBase=available_borrows_base,
        currentLiquidationThreshold=current_liquidation_threshold,
        ltv=ltv,
        healthFactor=health_factor,
    )
